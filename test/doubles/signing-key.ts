// One RS256 key pair that signs tokens for the Entra double, and verifies them for whoever holds
// the public JWK (the Azure DICOM double, or a test).
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, importJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';

export class SigningKey {
  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly jwk: JWK,
  ) {}

  static async generate(): Promise<SigningKey> {
    const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
    const jwk = await exportJWK(publicKey);
    return new SigningKey(privateKey, { ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' });
  }

  get kid(): string {
    return this.jwk.kid as string;
  }

  /** The public half as a JWK (kid, alg RS256, use sig). */
  publicJwk(): JWK {
    return { ...this.jwk };
  }

  /** Signs `claims` as they are: the caller sets iat/nbf/exp. */
  sign(claims: JWTPayload): Promise<string> {
    return new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid }).sign(this.privateKey);
  }
}

export interface VerifyOptions {
  audience?: string | string[];
  issuer?: string | string[];
  /** Seconds of allowed clock skew; 0 unless given. */
  clockToleranceSeconds?: number;
}

/** Verifies an RS256 JWT against a public JWK; throws a jose error (code ERR_JWT_EXPIRED, …) if not valid. */
export async function verifyJwt(token: string, jwk: JWK, options: VerifyOptions = {}): Promise<JWTPayload> {
  const key = await importJWK(jwk, 'RS256');
  const { payload } = await jwtVerify(token, key, {
    algorithms: ['RS256'],
    audience: options.audience,
    issuer: options.issuer,
    clockTolerance: options.clockToleranceSeconds ?? 0,
  });
  return payload;
}
