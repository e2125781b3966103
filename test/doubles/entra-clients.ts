// App registrations of the Entra double and confidential-client authentication: client secret
// (in the body or HTTP Basic) or a certificate-signed client assertion (RFC 7523, as msal-node
// builds it: PS256 with x5t#S256, or RS256 with x5t; iss = sub = client id; aud = token endpoint).
import { createHash, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { JWT_BEARER_ASSERTION, OAuthError, type BasicCredentials } from './entra-oauth.js';

export interface ConfidentialClientRegistration {
  clientId: string;
  secret?: string;
  /** Public key or X.509 certificate (PEM or KeyObject) whose private key signs client assertions. */
  certificate?: { publicKey: string | KeyObject; thumbprintSha256?: string; thumbprintSha1?: string };
  /** App roles put in `roles` of app-only tokens. */
  roles?: string[];
  /** Object id of the service principal (`oid` of app-only tokens); random unless given. */
  oid?: string;
}

export interface AppClient {
  clientId: string;
  secret?: string;
  publicKey?: KeyObject;
  thumbprintSha256?: string;
  thumbprintSha1?: string;
  roles: string[];
  oid: string;
  isPublic: boolean;
}

export class ClientRegistry {
  private readonly clients = new Map<string, AppClient>();

  constructor(private readonly tenantId: string) {}

  registerConfidential(reg: ConfidentialClientRegistration): AppClient {
    const client: AppClient = {
      clientId: reg.clientId,
      secret: reg.secret,
      publicKey: reg.certificate ? toPublicKey(reg.certificate.publicKey) : undefined,
      thumbprintSha256: reg.certificate?.thumbprintSha256?.toLowerCase(),
      thumbprintSha1: reg.certificate?.thumbprintSha1?.toLowerCase(),
      roles: reg.roles ?? [],
      oid: reg.oid ?? randomUUID(),
      isPublic: false,
    };
    this.clients.set(reg.clientId, client);
    return client;
  }

  registerPublic(clientId: string): AppClient {
    const client: AppClient = { clientId, roles: [], oid: randomUUID(), isPublic: true };
    this.clients.set(clientId, client);
    return client;
  }

  /** The registered client, or Entra's AADSTS700016 answer. */
  known(clientId: string): AppClient {
    const client = this.clients.get(clientId);
    if (!client) {
      throw new OAuthError(
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${this.tenantId}'.`,
      );
    }
    return client;
  }

  /**
   * Authenticates a confidential client from a token request. `assertionAudiences` are the `aud`
   * values accepted in a client assertion.
   */
  async authenticate(form: URLSearchParams, basic: BasicCredentials | undefined, assertionAudiences: string[]): Promise<AppClient> {
    const clientId = form.get('client_id') ?? basic?.clientId ?? '';
    const client = this.known(clientId);
    const assertion = form.get('client_assertion');
    if (assertion) {
      if (form.get('client_assertion_type') !== JWT_BEARER_ASSERTION) {
        throw new OAuthError(400, 'invalid_request', 50027, 'Invalid client_assertion_type.');
      }
      await verifyAssertion(client, assertion, assertionAudiences);
      return client;
    }
    const secret = form.get('client_secret') ?? basic?.secret;
    if (secret !== null && secret !== undefined) {
      if (!client.secret || client.secret !== secret) {
        throw new OAuthError(
          401,
          'invalid_client',
          7000215,
          `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
        );
      }
      return client;
    }
    throw new OAuthError(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
  }
}

async function verifyAssertion(client: AppClient, assertion: string, audiences: string[]): Promise<void> {
  const keyNotFound = () =>
    new OAuthError(401, 'invalid_client', 700027, 'Client assertion contains an invalid signature. [Reason - The key was not found.]');
  if (!client.publicKey) throw keyNotFound();
  const header = decodeProtectedHeader(assertion);
  const x5tS256 = header['x5t#S256'] as string | undefined;
  if (client.thumbprintSha256 && (!x5tS256 || hexOf(x5tS256) !== client.thumbprintSha256)) throw keyNotFound();
  if (client.thumbprintSha1 && (!header.x5t || hexOf(header.x5t) !== client.thumbprintSha1)) throw keyNotFound();
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(assertion, client.publicKey, {
      algorithms: ['RS256', 'PS256'],
      audience: audiences,
      // Entra allows clock skew; msal also rounds (not floors) its iat/nbf to the second.
      clockTolerance: 300,
    }));
  } catch (err) {
    const { code, claim, message } = err as { code?: string; claim?: string; message: string };
    if (code === 'ERR_JWT_EXPIRED' || (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'nbf')) {
      throw new OAuthError(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
    }
    if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
      throw new OAuthError(401, 'invalid_client', 700016, `Client assertion audience claim does not match Realm issuer. ${message}`);
    }
    throw new OAuthError(401, 'invalid_client', 700027, `Client assertion failed signature validation. ${message}`);
  }
  if (claims.iss !== client.clientId || claims.sub !== client.clientId) {
    throw new OAuthError(401, 'invalid_client', 700021, "Client assertion application identifier doesn't match 'client_id' parameter.");
  }
}

function toPublicKey(key: string | KeyObject): KeyObject {
  return typeof key === 'string' || key.type === 'private' ? createPublicKey(key) : key;
}

/**
 * SHA-256 thumbprint (hex) of a public key's SPKI DER: a stand-in for the certificate thumbprint
 * in msal's `clientCertificate.thumbprintSha256` when a test has a key pair but no X.509 certificate.
 */
export function publicKeyThumbprintSha256(key: string | KeyObject): string {
  const der = toPublicKey(key).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('hex');
}

function hexOf(base64url: string): string {
  return Buffer.from(base64url, 'base64url').toString('hex');
}
