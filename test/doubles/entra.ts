// Entra ID (Azure AD v2 endpoint) double on 127.0.0.1: OpenID configuration, instance discovery,
// JWKS, the device authorization endpoint and the token endpoint (client_credentials with a
// secret or a certificate assertion, device_code, refresh_token). Access tokens are RS256 JWTs
// shaped like the v1 tokens Azure issues for the DICOM service (aud
// https://dicom.healthcareapis.azure.com, iss https://sts.windows.net/{tenant}/).
//
// msal-node only takes https authorities, so point it here with both helpers:
//   new ConfidentialClientApplication({
//     auth: { ...entra.msalAuth(clientId), clientSecret },   // authority https://127.0.0.1:PORT/TENANT + metadata
//     system: entra.msalSystem(),                            // networkClient that calls http://127.0.0.1:PORT
//   })
import { randomBytes, randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { JWK, JWTPayload } from 'jose';
import { ClientRegistry, type ConfidentialClientRegistration } from './entra-clients.js';
import { DeviceCodes, type DeviceCodeGrant, type SignedInUser, type UserIdentity } from './entra-device-codes.js';
import {
  DEVICE_CODE_GRANT,
  DICOM_DEFAULT_SCOPE,
  DICOM_RESOURCE,
  OAuthError,
  OIDC_SCOPES,
  instanceDiscovery,
  openIdConfiguration,
  parseBasic,
  resourceOf,
  resourceScopes,
} from './entra-oauth.js';
import { listenLoopback, readBody, sendJson, type LoopbackServer } from './http-server.js';
import { loopbackNetworkClient, type LoopbackNetworkClient } from './msal-loopback-network.js';
import { SigningKey, verifyJwt } from './signing-key.js';

export { DICOM_DEFAULT_SCOPE, DICOM_RESOURCE } from './entra-oauth.js';
export { publicKeyThumbprintSha256, type ConfidentialClientRegistration } from './entra-clients.js';
export type { DeviceCodeGrant, UserIdentity } from './entra-device-codes.js';
export type { LoopbackNetworkClient } from './msal-loopback-network.js';

export type Grant = 'client_credentials' | 'device_code' | 'refresh_token' | 'other';

export interface EntraDoubleOptions {
  tenantId?: string;
  /** Lifetime of access tokens issued from now on (seconds). Default 3600. May be changed at run time. */
  tokenLifetimeSeconds?: number;
  /** `interval` returned by the device authorization endpoint (seconds). Default 1. */
  deviceCodeIntervalSeconds?: number;
  /** `expires_in` of device codes (seconds). Default 900. */
  deviceCodeLifetimeSeconds?: number;
}

export interface TokenRequestRecord {
  grant: Grant;
  clientId: string | undefined;
  clientAuth: 'secret' | 'certificate' | 'none';
  status: number;
  /** OAuth `error` when refused, e.g. 'authorization_pending', 'invalid_client'. */
  error?: string;
}

interface RefreshGrant {
  clientId: string;
  scopes: string[];
  user: SignedInUser;
}

export class EntraDouble {
  readonly tenantId: string;
  /** Lifetime of the access tokens issued from now on; change it to make tokens expire mid-run. */
  tokenLifetimeSeconds: number;
  deviceCodeIntervalSeconds: number;
  deviceCodeLifetimeSeconds: number;
  /** Every token endpoint request, in order, failures included. */
  readonly tokenRequests: TokenRequestRecord[] = [];
  /** Every request the double served, in order. */
  readonly requests: Array<{ method: string; path: string; status: number }> = [];

  private readonly clients: ClientRegistry;
  private readonly deviceCodes = new DeviceCodes();
  private readonly refreshTokens = new Map<string, RefreshGrant>();
  private server?: LoopbackServer;
  private key?: SigningKey;

  constructor(options: EntraDoubleOptions = {}) {
    this.tenantId = options.tenantId ?? randomUUID();
    this.tokenLifetimeSeconds = options.tokenLifetimeSeconds ?? 3600;
    this.deviceCodeIntervalSeconds = options.deviceCodeIntervalSeconds ?? 1;
    this.deviceCodeLifetimeSeconds = options.deviceCodeLifetimeSeconds ?? 900;
    this.clients = new ClientRegistry(this.tenantId);
  }

  static async start(options: EntraDoubleOptions = {}): Promise<EntraDouble> {
    return new EntraDouble(options).start();
  }

  async start(): Promise<this> {
    this.key ??= await SigningKey.generate();
    this.server = await listenLoopback((req, res) => this.handle(req, res));
    return this;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  // ---- addresses ---------------------------------------------------------------------------

  get port(): number {
    return this.live().port;
  }
  /** `http://127.0.0.1:PORT`: where the double really listens. */
  get origin(): string {
    return this.live().origin;
  }
  /** `https://127.0.0.1:PORT`: the origin msal is told about (msal only takes https authorities). */
  get advertisedOrigin(): string {
    return `https://127.0.0.1:${this.port}`;
  }
  /** The authority to give msal: `https://127.0.0.1:PORT/TENANT`. */
  get authority(): string {
    return `${this.advertisedOrigin}/${this.tenantId}`;
  }
  /** Token endpoint over plain http, for clients other than msal. */
  get tokenUrl(): string {
    return `${this.origin}/${this.tenantId}/oauth2/v2.0/token`;
  }
  /** Device authorization endpoint over plain http, for clients other than msal. */
  get deviceCodeUrl(): string {
    return `${this.origin}/${this.tenantId}/oauth2/v2.0/devicecode`;
  }
  /** `iss` of access tokens: `https://sts.windows.net/TENANT/`. */
  get accessTokenIssuer(): string {
    return `https://sts.windows.net/${this.tenantId}/`;
  }

  // ---- msal-node configuration -------------------------------------------------------------

  /** Value for msal `auth.authorityMetadata`: the OpenID configuration as a JSON string. */
  authorityMetadata(): string {
    return JSON.stringify(openIdConfiguration(this.advertisedOrigin, this.tenantId));
  }

  /** Value for msal `auth.cloudDiscoveryMetadata`: the instance discovery answer as a JSON string. */
  cloudDiscoveryMetadata(): string {
    return JSON.stringify(instanceDiscovery(this.advertisedOrigin, this.tenantId));
  }

  /** msal `auth` settings (add clientSecret or clientCertificate for a confidential client). */
  msalAuth(clientId: string): {
    clientId: string;
    authority: string;
    knownAuthorities: string[];
    authorityMetadata: string;
    cloudDiscoveryMetadata: string;
  } {
    return {
      clientId,
      authority: this.authority,
      knownAuthorities: [`127.0.0.1:${this.port}`],
      authorityMetadata: this.authorityMetadata(),
      cloudDiscoveryMetadata: this.cloudDiscoveryMetadata(),
    };
  }

  /** msal `system` settings: a fresh network client carrying msal's https calls to this double. */
  msalSystem(): { networkClient: LoopbackNetworkClient } {
    return { networkClient: loopbackNetworkClient(this.origin) };
  }

  // ---- registrations and the user's side of device code -----------------------------------

  registerConfidentialClient(reg: ConfidentialClientRegistration): { clientId: string; oid: string } {
    const { clientId, oid } = this.clients.registerConfidential(reg);
    return { clientId, oid };
  }

  /** A public client (device code flow, no client credential). */
  registerPublicClient(clientId: string): void {
    this.clients.registerPublic(clientId);
  }

  /** The user approves the code shown to them; the next token poll gets tokens. */
  approveDeviceCode(userCode: string, user: UserIdentity = {}): void {
    this.deviceCodes.approve(userCode, user);
  }

  /** The user declines; the next poll gets `authorization_declined`. */
  declineDeviceCode(userCode: string): void {
    this.deviceCodes.decline(userCode);
  }

  /** Resolves with the next device code issued (or one issued and not yet handed out). */
  waitForDeviceCode(): Promise<DeviceCodeGrant> {
    return this.deviceCodes.next();
  }

  /** Makes every refresh token issued so far invalid (`invalid_grant`). */
  revokeRefreshTokens(): void {
    this.refreshTokens.clear();
  }

  tokenRequestCount(grant?: Grant): number {
    return this.tokenRequests.filter((r) => grant === undefined || r.grant === grant).length;
  }

  tokenRequestCounts(): Record<Grant, number> {
    const counts: Record<Grant, number> = { client_credentials: 0, device_code: 0, refresh_token: 0, other: 0 };
    for (const r of this.tokenRequests) counts[r.grant]++;
    return counts;
  }

  // ---- tokens ------------------------------------------------------------------------------

  /** The public key that signs access tokens (kid, alg RS256). */
  publicJwk(): JWK {
    return this.signingKey().publicJwk();
  }

  /** Verifies an access token of this double (signature, exp, aud, iss); returns its claims. */
  verifyAccessToken(token: string, audience: string = DICOM_RESOURCE): Promise<JWTPayload> {
    return verifyJwt(token, this.publicJwk(), { audience, issuer: this.accessTokenIssuer });
  }

  /** Mints an access token directly (already expired, another audience, with roles…) for tests. */
  issueAccessToken(options: { audience?: string; lifetimeSeconds?: number; roles?: string[]; scp?: string; claims?: JWTPayload } = {}): Promise<string> {
    const lifetime = options.lifetimeSeconds ?? this.tokenLifetimeSeconds;
    return this.signAccessToken(options.audience ?? DICOM_RESOURCE, lifetime, {
      oid: randomUUID(),
      appid: randomUUID(),
      ...(options.roles ? { roles: options.roles } : {}),
      ...(options.scp ? { scp: options.scp } : {}),
      ...options.claims,
    });
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const json = (status: number, body: unknown) => {
      this.requests.push({ method: req.method ?? '', path: url.pathname, status });
      sendJson(res, status, body, { 'cache-control': 'no-store' });
    };
    const form = async () => new URLSearchParams((await readBody(req)).toString('utf8'));
    const [tenant, a, b, c] = url.pathname.split('/').filter(Boolean);
    const route = `${req.method} ${[a, b, c].filter(Boolean).join('/')}`;
    try {
      if (route === 'GET discovery/instance' && tenant === 'common') return json(200, instanceDiscovery(this.advertisedOrigin, this.tenantId));
      if (tenant !== this.tenantId && tenant !== 'common' && tenant !== 'organizations') {
        throw new OAuthError(400, 'invalid_request', 90002, `Tenant '${tenant}' not found.`);
      }
      switch (route) {
        case 'GET v2.0/.well-known/openid-configuration':
          return json(200, openIdConfiguration(this.advertisedOrigin, this.tenantId));
        case 'GET discovery/keys':
        case 'GET discovery/v2.0/keys':
          return json(200, { keys: [this.publicJwk()] });
        case 'POST oauth2/v2.0/token':
          return json(200, await this.token(await form(), req.headers.authorization));
        case 'POST oauth2/v2.0/devicecode':
          return json(200, this.deviceAuthorization(await form()));
        default:
          return json(404, { error: 'not_found', error_description: `No route ${req.method} ${url.pathname}` });
      }
    } catch (err) {
      if (!(err instanceof OAuthError)) throw err;
      return json(err.status, err.body(this.advertisedOrigin));
    }
  }

  private async token(form: URLSearchParams, authorization: string | undefined): Promise<Record<string, unknown>> {
    const grantType = form.get('grant_type') ?? '';
    const grant: Grant =
      grantType === 'client_credentials' || grantType === 'refresh_token'
        ? grantType
        : grantType === DEVICE_CODE_GRANT || grantType === 'device_code'
          ? 'device_code'
          : 'other';
    const basic = parseBasic(authorization);
    const entry: TokenRequestRecord = {
      grant,
      clientId: form.get('client_id') ?? basic?.clientId,
      clientAuth: form.get('client_assertion') ? 'certificate' : form.get('client_secret') || basic ? 'secret' : 'none',
      status: 200,
    };
    this.tokenRequests.push(entry);
    try {
      switch (grant) {
        case 'client_credentials':
          return await this.clientCredentials(form, basic);
        case 'device_code': {
          const { grant: code, user } = this.deviceCodes.redeem(form.get('device_code') ?? '', form.get('client_id'));
          return await this.userTokens(code.clientId, code.scopes, user, form);
        }
        case 'refresh_token':
          return await this.refresh(form, basic);
        default:
          throw new OAuthError(400, 'unsupported_grant_type', 70003, `The app requested an unsupported grant type '${grantType}'.`);
      }
    } catch (err) {
      if (err instanceof OAuthError) Object.assign(entry, { status: err.status, error: err.error });
      throw err;
    }
  }

  private async clientCredentials(form: URLSearchParams, basic: ReturnType<typeof parseBasic>) {
    const client = await this.clients.authenticate(form, basic, this.assertionAudiences());
    const scopes = resourceScopes(form.get('scope'));
    if (scopes.length !== 1 || !scopes[0].endsWith('/.default')) {
      throw new OAuthError(
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scopes.join(' ')} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
      );
    }
    const lifetime = this.tokenLifetimeSeconds;
    const accessToken = await this.signAccessToken(resourceOf(scopes[0]), lifetime, {
      oid: client.oid,
      appid: client.clientId,
      appidacr: form.get('client_assertion') ? '2' : '1',
      idtyp: 'app',
      ...(client.roles.length ? { roles: client.roles } : {}),
    });
    return { token_type: 'Bearer', expires_in: lifetime, ext_expires_in: lifetime, access_token: accessToken };
  }

  private deviceAuthorization(form: URLSearchParams) {
    const clientId = form.get('client_id') ?? '';
    this.clients.known(clientId);
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const grant = this.deviceCodes.issue(clientId, scopes, this.deviceCodeLifetimeSeconds);
    const verificationUri = 'https://microsoft.com/devicelogin';
    return {
      user_code: grant.userCode,
      device_code: grant.deviceCode,
      verification_uri: verificationUri,
      expires_in: this.deviceCodeLifetimeSeconds,
      interval: this.deviceCodeIntervalSeconds,
      message: `To sign in, use a web browser to open the page ${verificationUri} and enter the code ${grant.userCode} to authenticate.`,
    };
  }

  private async refresh(form: URLSearchParams, basic: ReturnType<typeof parseBasic>) {
    const stored = this.refreshTokens.get(form.get('refresh_token') ?? '');
    if (!stored || stored.clientId !== (form.get('client_id') ?? basic?.clientId)) {
      throw new OAuthError(400, 'invalid_grant', 9002313, 'Invalid request. Request is malformed or invalid (refresh token not valid).');
    }
    if (!this.clients.known(stored.clientId).isPublic) await this.clients.authenticate(form, basic, this.assertionAudiences());
    const asked = (form.get('scope') ?? '').split(' ').filter(Boolean);
    return this.userTokens(stored.clientId, asked.length ? asked : stored.scopes, stored.user, form);
  }

  /** Access, refresh and id tokens for a signed-in user (device code and refresh grants). */
  private async userTokens(clientId: string, scopes: string[], user: SignedInUser, form: URLSearchParams) {
    const resourceScope = scopes.find((s) => !OIDC_SCOPES.has(s)) ?? DICOM_DEFAULT_SCOPE;
    const lifetime = this.tokenLifetimeSeconds;
    const accessToken = await this.signAccessToken(resourceOf(resourceScope), lifetime, {
      oid: user.oid,
      upn: user.upn,
      unique_name: user.upn,
      name: user.name,
      appid: clientId,
      appidacr: '0',
      scp: user.scp,
      idtyp: 'user',
      ...(user.roles ? { roles: user.roles } : {}),
    });
    const refreshToken = randomBytes(48).toString('base64url');
    this.refreshTokens.set(refreshToken, { clientId, scopes, user });
    const now = Math.floor(Date.now() / 1000);
    const idToken = await this.signingKey().sign({
      aud: clientId,
      iss: `${this.advertisedOrigin}/${this.tenantId}/v2.0`,
      iat: now,
      nbf: now,
      exp: now + 3600,
      tid: this.tenantId,
      oid: user.oid,
      sub: user.oid,
      preferred_username: user.upn,
      name: user.name,
      ver: '2.0',
    });
    const clientInfo = Buffer.from(JSON.stringify({ uid: user.oid, utid: this.tenantId })).toString('base64url');
    return {
      token_type: 'Bearer',
      scope: scopes.join(' '),
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: accessToken,
      refresh_token: refreshToken,
      id_token: idToken,
      ...(form.get('client_info') === '1' ? { client_info: clientInfo } : {}),
    };
  }

  /** A v1-style access token: aud, iss sts.windows.net, tid, times; `claims` add oid, appid, roles/scp… */
  private signAccessToken(audience: string, lifetimeSeconds: number, claims: JWTPayload): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const issuedAt = lifetimeSeconds > 0 ? now : now + lifetimeSeconds - 60; // one minted already expired was issued in the past
    return this.signingKey().sign({
      aud: audience,
      iss: this.accessTokenIssuer,
      iat: issuedAt,
      nbf: issuedAt,
      exp: now + lifetimeSeconds,
      tid: this.tenantId,
      sub: claims.oid as string | undefined,
      ver: '1.0',
      uti: randomBytes(16).toString('base64url'),
      ...claims,
    });
  }

  /** `aud` values Entra accepts in a client assertion: the token endpoint (as msal sees it) or the issuer. */
  private assertionAudiences(): string[] {
    const path = `/${this.tenantId}/oauth2/v2.0/token`;
    return [
      `${this.advertisedOrigin}${path}`,
      `${this.origin}${path}`,
      `${this.advertisedOrigin}/${this.tenantId}/v2.0`,
      `https://login.microsoftonline.com${path}`,
      `https://login.microsoftonline.com/${this.tenantId}/v2.0`,
    ];
  }

  private signingKey(): SigningKey {
    if (!this.key) throw new Error('EntraDouble not started');
    return this.key;
  }

  private live(): LoopbackServer {
    if (!this.server) throw new Error('EntraDouble not started');
    return this.server;
  }
}
