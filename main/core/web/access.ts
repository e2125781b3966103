import { createHash, timingSafeEqual } from 'node:crypto';
import { isIpLiteral, isLoopbackHost } from '../contract/addresses.js';
import { isUsablePasswordHash, verifyPassword } from './password.js';

export { isLoopbackHost };

export const SESSION_COOKIE = 'dicom_edge_session';

export interface AccessSettings {
  host: string;
  /** Configured token (settings or --api-token); '' when none. */
  configuredToken: string;
  /** The token in force: configured, or generated at start. */
  sessionToken: string;
  basicAuth?: { user: string; passwordHash: string };
  /** Other web origins allowed to call (http.corsOrigins). */
  corsOrigins?: readonly string[];
  /** Host names answered to besides loopback and the bound address (http.allowedHosts). */
  allowedHosts?: readonly string[];
}

export class BindRefusedError extends Error {
  override name = 'BindRefusedError';
  /** The settings field at fault. */
  constructor(message: string, readonly field: 'http.host' | 'http.basicAuth.passwordHash') {
    super(message);
  }
}

/** A non-loopback bind without a configured credential must not start. */
export function checkBindPolicy(settings: AccessSettings): void {
  if (settings.basicAuth && !isUsablePasswordHash(settings.basicAuth.passwordHash)) {
    throw new BindRefusedError('http.basicAuth.passwordHash is not of the form scrypt$N$r$p$salt$hash', 'http.basicAuth.passwordHash');
  }
  if (isLoopbackHost(settings.host)) return;
  if (settings.configuredToken || settings.basicAuth) return;
  throw new BindRefusedError(
    `refusing to listen on non-loopback address ${settings.host}: configure a credential first ` +
      '(http.apiToken or --api-token, or http.basicAuth with a scrypt password hash)',
    'http.host',
  );
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time comparison (hashing first makes the lengths equal). */
export function sameSecret(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected)) && expected.length > 0;
}

export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const piece of cookieHeader.split(';')) {
    const eq = piece.indexOf('=');
    if (eq < 0) continue;
    if (piece.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(piece.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

export type AccessDecision = { ok: true; via: 'bearer' | 'cookie' | 'basic' } | { ok: false; reason: string };

/** Checks the Authorization header or the session cookie. */
export async function checkAccess(
  settings: AccessSettings,
  headers: { authorization?: string; cookie?: string },
): Promise<AccessDecision> {
  const authorization = headers.authorization ?? '';
  const bearer = /^Bearer\s+(.+)$/i.exec(authorization);
  if (bearer) {
    return sameSecret(bearer[1]!.trim(), settings.sessionToken) ? { ok: true, via: 'bearer' } : { ok: false, reason: 'wrong bearer token' };
  }
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization);
  if (basic) {
    if (!settings.basicAuth) return { ok: false, reason: 'basic authentication is not configured' };
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon >= 0 ? decoded.slice(0, colon) : decoded;
    const password = colon >= 0 ? decoded.slice(colon + 1) : '';
    const passwordOk = await verifyPassword(password, settings.basicAuth.passwordHash);
    return sameSecret(user, settings.basicAuth.user) && passwordOk ? { ok: true, via: 'basic' } : { ok: false, reason: 'wrong user or password' };
  }
  if (authorization) return { ok: false, reason: 'unsupported authorization scheme' };
  const cookie = cookieValue(headers.cookie, SESSION_COOKIE);
  if (cookie !== undefined) {
    return sameSecret(cookie, settings.sessionToken) ? { ok: true, via: 'cookie' } : { ok: false, reason: 'stale session cookie' };
  }
  return { ok: false, reason: 'no credential' };
}

export function sessionCookie(token: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Why a state-changing request authenticated by the session cookie is refused as cross-site, or
 * undefined when it may go on. A browser attaches the cookie to requests that another web app starts,
 * and SameSite does not stop one on another port of the same host (same site, other origin), so such a
 * request must come from our own origin or a configured corsOrigins entry. Origin decides when present;
 * else Sec-Fetch-Site; a client that sends neither is not a browser page. Bearer and basic callers never
 * get here: their credential is not sent by the browser on its own.
 */
export function crossSiteReason(
  settings: Pick<AccessSettings, 'corsOrigins'>,
  request: { method: string; protocol: string; headers: Record<string, string | string[] | undefined> },
): string | undefined {
  if (SAFE_METHODS.has(request.method.toUpperCase())) return undefined;
  const header = (name: string) => [request.headers[name]].flat()[0];
  const origin = header('origin');
  if (origin !== undefined) {
    const host = header('host');
    const own = host ? originOf(`${request.protocol}://${host}`) : undefined;
    const given = originOf(origin);
    if (given && (given === own || (settings.corsOrigins ?? []).some((allowed) => originOf(allowed) === given))) return undefined;
    return `origin ${origin} is not this appliance's (${own ?? 'unknown'}) nor in http.corsOrigins`;
  }
  const fetchSite = header('sec-fetch-site');
  if (fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') {
    return `a ${fetchSite} request (Sec-Fetch-Site) without an Origin`;
  }
  return undefined;
}

const normalHost = (host: string) => host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();

/**
 * Why a request's Host header is not one this appliance answers to, or undefined when it is. DNS
 * rebinding points a name the attacker owns at this machine, so the browser sends that name: only
 * loopback names and addresses, the bound address (with a wildcard bind, any IP address: a page's
 * origin cannot be our address), and http.allowedHosts are answered. No Host (HTTP/1.0) is no browser.
 */
export function misdirectedHostReason(settings: Pick<AccessSettings, 'host' | 'allowedHosts'>, hostHeader: string | undefined): string | undefined {
  if (hostHeader === undefined) return undefined;
  let hostname: string;
  try {
    hostname = normalHost(new URL(`http://${hostHeader}`).hostname);
  } catch {
    return `host ${JSON.stringify(hostHeader)} is not a valid host`;
  }
  if (isLoopbackHost(hostname) || hostname.endsWith('.localhost')) return undefined;
  const bound = normalHost(settings.host);
  if (hostname === bound) return undefined;
  if ((bound === '0.0.0.0' || bound === '::' || bound === '') && isIpLiteral(hostname)) return undefined;
  if ((settings.allowedHosts ?? []).some((allowed) => normalHost(allowed) === hostname)) return undefined;
  return `host ${JSON.stringify(hostname)} is not one this appliance answers to; add it to http.allowedHosts to allow it`;
}
