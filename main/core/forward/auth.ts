/**
 * Authorization header providers per destination auth kind. Secrets arrive opened (see secrets.ts) and
 * never leave this module except inside the header value; nothing here logs them.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  ConfidentialClientApplication,
  ManagedIdentityApplication,
  PublicClientApplication,
  type AccountInfo,
  type Configuration,
  type ICachePlugin,
} from '@azure/msal-node';
import type { DestinationAuth } from '../contract/settings.js';
import type { Egress } from '../network/egress.js';
import type { DeviceCodeStatus } from './control.js';
import { egressNetworkClient } from './msal-network.js';

const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com';

/** No usable credential: the destination waits (state 'auth') until a user acts. */
export class SignInRequiredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SignInRequiredError';
  }
}

export interface AuthProvider {
  /** The Authorization header value, or undefined for none. `refresh` forces a new token. */
  authorization(refresh?: boolean): Promise<string | undefined>;
  /** Device-code flow only. */
  startDeviceCode?(): Promise<DeviceCodeStatus>;
  deviceCodeStatus?(): DeviceCodeStatus;
}

/** Test and embedding hooks for msal (e.g. a loopback network client and authority metadata). */
export interface MsalOverrides {
  auth?: Partial<Configuration['auth']>;
  system?: Configuration['system'];
}

export interface AuthContext {
  cachePlugin?: ICachePlugin;
  msal?: MsalOverrides;
  /** Called when a device-code sign-in finishes (the destination may resume). */
  onSignedIn?: () => void;
  /** The proxy and CAs for token requests; without it msal's own client goes out directly. */
  egress?: Egress;
}

function authorityOf(auth: { tenantId: string; authority?: string }): string {
  return auth.authority ?? `${DEFAULT_AUTHORITY_HOST}/${auth.tenantId}`;
}

function describeMsalError(error: unknown): string {
  const e = error as { errorCode?: string; errorMessage?: string; message?: string };
  // msal messages carry correlation ids and trace text, never the secret.
  return `${e.errorCode ? `${e.errorCode}: ` : ''}${(e.errorMessage ?? e.message ?? String(error)).split('\n')[0]}`;
}

function msalConfig(base: Configuration['auth'], context: AuthContext): Configuration {
  return {
    auth: { ...base, ...context.msal?.auth },
    system: { ...(context.egress ? { networkClient: egressNetworkClient(context.egress) } : {}), ...context.msal?.system },
    cache: context.cachePlugin ? { cachePlugin: context.cachePlugin } : undefined,
  };
}

export function createAuthProvider(auth: DestinationAuth, context: AuthContext = {}): AuthProvider {
  switch (auth.kind) {
    case 'none':
      return { authorization: async () => undefined };
    case 'basic': {
      const header = `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString('base64')}`;
      return { authorization: async () => header };
    }
    case 'bearer': {
      const header = `Bearer ${auth.token}`;
      return { authorization: async () => header };
    }
    case 'entra-client-secret':
    case 'entra-client-certificate':
      return clientCredentialsProvider(auth, context);
    case 'entra-device-code':
      return deviceCodeProvider(auth, context);
    case 'managed-identity':
      return managedIdentityProvider(auth, context);
  }
}

/** Managed identities are asked for a resource, not a scope: `https://x/.default` → `https://x`. */
export function resourceOfScope(scope: string): string {
  return scope.replace(/\/\.default$/, '');
}

/**
 * The box's own identity, from the endpoint Azure gives it: IMDS on an Azure VM, the Arc agent's (HIMDS) on a
 * server enrolled in Azure Arc, found by msal from the environment (IDENTITY_ENDPOINT and IMDS_ENDPOINT, or the
 * agent installed). msal caches the token until shortly before it expires.
 */
function managedIdentityProvider(auth: Extract<DestinationAuth, { kind: 'managed-identity' }>, context: AuthContext): AuthProvider {
  let app: ManagedIdentityApplication | undefined;
  const identity = auth.clientId ? `the user-assigned managed identity ${auth.clientId}` : 'the system-assigned managed identity';
  return {
    async authorization(refresh = false) {
      try {
        app ??= new ManagedIdentityApplication({
          managedIdentityIdParams: auth.clientId ? { userAssignedClientId: auth.clientId } : undefined,
          system: context.msal?.system,
        });
        const result = await app.acquireToken({ resource: resourceOfScope(auth.scope), forceRefresh: refresh });
        if (!result?.accessToken) throw new Error('no access token in the answer');
        return `Bearer ${result.accessToken}`;
      } catch (error) {
        throw new TokenError(`could not get a token for ${identity} (${app?.getManagedIdentitySource() ?? 'no source found'}): ${describeMsalError(error)}`);
      }
    },
  };
}

function clientCredentialsProvider(
  auth: Extract<DestinationAuth, { kind: 'entra-client-secret' | 'entra-client-certificate' }>,
  context: AuthContext,
): AuthProvider {
  let app: ConfidentialClientApplication | undefined;
  const build = () => {
    const base: Configuration['auth'] = { clientId: auth.clientId, authority: authorityOf(auth) };
    if (auth.kind === 'entra-client-secret') {
      base.clientSecret = auth.clientSecret;
    } else {
      const certificatePem = readFileSync(auth.certificateFile, 'utf8');
      const certificate = new X509Certificate(certificatePem);
      base.clientCertificate = {
        thumbprintSha256: certificate.fingerprint256.replaceAll(':', '').toLowerCase(),
        privateKey: readFileSync(auth.privateKeyFile, 'utf8'),
        x5c: certificatePem,
      };
    }
    return new ConfidentialClientApplication(msalConfig(base, context));
  };
  return {
    async authorization(refresh = false) {
      app ??= build();
      try {
        const result = await app.acquireTokenByClientCredential({ scopes: [auth.scope], skipCache: refresh });
        if (!result?.accessToken) throw new Error('no access token in the answer');
        return `Bearer ${result.accessToken}`;
      } catch (error) {
        throw new TokenError(`could not get a token from ${authorityOf(auth)}: ${describeMsalError(error)}`);
      }
    },
  };
}

/** The token endpoint could not be reached or refused us; transient unless it says invalid_client. */
export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenError';
  }
  get permanent(): boolean {
    return /invalid_client|unauthorized_client|AADSTS7000215|AADSTS700016|invalid_grant/.test(this.message);
  }
}

function deviceCodeProvider(auth: Extract<DestinationAuth, { kind: 'entra-device-code' }>, context: AuthContext): AuthProvider {
  const app = new PublicClientApplication(msalConfig({ clientId: auth.clientId, authority: authorityOf(auth) }, context));
  let status: DeviceCodeStatus = { state: 'idle' };
  let account: AccountInfo | undefined;
  const findAccount = async () => {
    if (account) return account;
    const accounts = await app.getTokenCache().getAllAccounts();
    account = accounts[0];
    if (account && status.state === 'idle') status = { state: 'signed-in', account: account.username };
    return account;
  };
  return {
    async authorization(refresh = false) {
      const signedIn = await findAccount();
      if (!signedIn) throw new SignInRequiredError('sign in with a device code to send to this destination');
      try {
        const result = await app.acquireTokenSilent({ account: signedIn, scopes: [auth.scope], forceRefresh: refresh });
        return `Bearer ${result.accessToken}`;
      } catch (error) {
        const text = describeMsalError(error);
        if (/interaction_required|invalid_grant|no_tokens_found|consent_required/.test(text)) {
          account = undefined;
          status = { state: 'failed', error: `sign-in expired: ${text}` };
          throw new SignInRequiredError(`sign-in expired, sign in again with a device code (${text})`);
        }
        throw new TokenError(`could not refresh the token: ${text}`);
      }
    },
    async startDeviceCode() {
      if (status.state === 'waiting' && status.expiresAt > Date.now()) return status;
      const shown = new Promise<DeviceCodeStatus>((resolve) => {
        app
          .acquireTokenByDeviceCode({
            scopes: [auth.scope],
            deviceCodeCallback: (response) => {
              status = {
                state: 'waiting', userCode: response.userCode, verificationUri: response.verificationUri,
                message: response.message, expiresAt: Date.now() + response.expiresIn * 1000,
              };
              resolve(status);
            },
          })
          .then((result) => {
            account = result?.account ?? undefined;
            status = { state: 'signed-in', account: account?.username ?? 'unknown' };
            resolve(status);
            context.onSignedIn?.();
          })
          .catch((error: unknown) => {
            status = { state: 'failed', error: describeMsalError(error) };
            resolve(status);
          });
      });
      return shown;
    },
    deviceCodeStatus: () => status,
  };
}
