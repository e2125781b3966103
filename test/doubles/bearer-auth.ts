// Bearer token check in front of the Azure DICOM double: 401 with a WWW-Authenticate challenge
// (RFC 6750) for a missing or invalid token, 403 when the token lacks a required role.
import type { JWK, JWTPayload } from 'jose';
import { verifyJwt } from './signing-key.js';

export interface BearerAuthOptions {
  /** Public key that signs valid tokens, e.g. `entra.publicJwk()`. */
  jwk: JWK;
  /** Expected `aud`. Default https://dicom.healthcareapis.azure.com */
  audience?: string | string[];
  /** Expected `iss`, if checked, e.g. `entra.accessTokenIssuer`. */
  issuer?: string | string[];
  /** Tenant for the challenge's authorization_uri. */
  tenantId?: string;
  /** Clock skew allowed on exp/nbf. Default 0 (the real service allows about 5 minutes). */
  clockToleranceSeconds?: number;
  /** When set, a token whose `roles` does not hold this value gets 403. */
  requiredRole?: string;
}

export type AuthOutcome =
  | { ok: true; claims: JWTPayload }
  | { ok: false; status: 401 | 403; reason: 'missing' | 'invalid' | 'forbidden'; headers: Record<string, string>; body: unknown };

export async function checkBearer(authorization: string | undefined, options: BearerAuthOptions): Promise<AuthOutcome> {
  const audience = options.audience ?? 'https://dicom.healthcareapis.azure.com';
  const firstAudience = Array.isArray(audience) ? audience[0] : audience;
  const challenge = [
    `Bearer authorization_uri="https://login.microsoftonline.com/${options.tenantId ?? 'common'}"`,
    `resource_id="${firstAudience}"`,
    `realm="${firstAudience}"`,
  ].join(', ');
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) {
    return {
      ok: false,
      status: 401,
      reason: 'missing',
      headers: { 'www-authenticate': challenge },
      body: { error: { code: 'Unauthorized', message: 'Authentication failed: no bearer token.' } },
    };
  }
  let claims: JWTPayload;
  try {
    claims = await verifyJwt(match[1], options.jwk, {
      audience,
      issuer: options.issuer,
      clockToleranceSeconds: options.clockToleranceSeconds,
    });
  } catch (err) {
    const description = describe(err);
    return {
      ok: false,
      status: 401,
      reason: 'invalid',
      headers: { 'www-authenticate': `${challenge}, error="invalid_token", error_description="${description}"` },
      body: { error: { code: 'Unauthorized', message: `Authentication failed: ${description}` } },
    };
  }
  const roles = Array.isArray(claims.roles) ? (claims.roles as unknown[]) : [];
  if (options.requiredRole && !roles.includes(options.requiredRole)) {
    return {
      ok: false,
      status: 403,
      reason: 'forbidden',
      headers: {},
      body: { error: { code: 'Forbidden', message: `Authorization failed: the token lacks the role '${options.requiredRole}'.` } },
    };
  }
  return { ok: true, claims };
}

function describe(err: unknown): string {
  const e = err as { code?: string; claim?: string; message?: string };
  if (e.code === 'ERR_JWT_EXPIRED') return 'The token is expired';
  if (e.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && e.claim === 'aud') return 'The audience is invalid';
  if (e.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && e.claim === 'iss') return 'The issuer is invalid';
  if (e.code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return 'The signature is invalid';
  return (e.message ?? 'The token is invalid').replace(/"/g, "'");
}
