import { randomBytes, scrypt as scryptCallback, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const scrypt = (password: string, salt: Buffer, length: number, options: ScryptOptions) =>
  new Promise<Buffer>((resolve, reject) =>
    scryptCallback(password, salt, length, options, (error, key) => (error ? reject(error) : resolve(key))),
  );

const DEFAULTS = { N: 16384, r: 8, p: 1 };

/** `scrypt$N$r$p$<salt base64url>$<hash base64url>`: the at-rest form of http.basicAuth.passwordHash. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 32, DEFAULTS);
  return ['scrypt', DEFAULTS.N, DEFAULTS.r, DEFAULTS.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const fields = stored.split('$');
  if (fields.length !== 6 || fields[0] !== 'scrypt') return false;
  const [N, r, p] = fields.slice(1, 4).map(Number) as [number, number, number];
  if (![N, r, p].every((n) => Number.isInteger(n) && n > 0)) return false;
  const salt = Buffer.from(fields[4]!, 'base64url');
  const expected = Buffer.from(fields[5]!, 'base64url');
  if (expected.length < 16) return false;
  const key = await scrypt(password, salt, expected.length, { N, r, p, maxmem: 256 * N * r });
  return timingSafeEqual(key, expected);
}

/** Whether the stored hash names parameters we can check (so a typo is caught at start, not at login). */
export function isUsablePasswordHash(stored: string): boolean {
  const fields = stored.split('$');
  return fields.length === 6 && fields[0] === 'scrypt' && fields.slice(1, 4).every((f) => /^[1-9][0-9]*$/.test(f));
}
