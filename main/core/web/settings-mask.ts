import type { Settings } from '../settings/schema.js';

/** What a secret reads as over HTTP; writing it back keeps the stored value. */
export const SECRET_MASK = '********';
const SECRET_AUTH_FIELDS = ['password', 'token', 'clientSecret'] as const;

export function maskSettings(settings: Settings): Settings {
  const copy = structuredClone(settings) as Settings;
  if (copy.http.apiToken) copy.http.apiToken = SECRET_MASK;
  if (copy.http.basicAuth) copy.http.basicAuth.passwordHash = SECRET_MASK;
  for (const destination of copy.destinations) {
    const auth = destination.auth as Record<string, unknown>;
    for (const field of SECRET_AUTH_FIELDS) if (typeof auth[field] === 'string' && auth[field]) auth[field] = SECRET_MASK;
  }
  return copy;
}

/** Puts the stored secrets back where the client returned the mask. */
export function unmaskSettings(incoming: unknown, current: Settings): unknown {
  if (!incoming || typeof incoming !== 'object') return incoming;
  const next = structuredClone(incoming) as Record<string, any>;
  if (next.http && typeof next.http === 'object') {
    if (next.http.apiToken === SECRET_MASK) next.http.apiToken = current.http.apiToken;
    if (next.http.basicAuth?.passwordHash === SECRET_MASK) {
      if (current.http.basicAuth) next.http.basicAuth.passwordHash = current.http.basicAuth.passwordHash;
      else delete next.http.basicAuth;
    }
  }
  if (Array.isArray(next.destinations)) {
    for (const destination of next.destinations) {
      const auth = destination?.auth;
      if (!auth || typeof auth !== 'object') continue;
      const stored = current.destinations.find((d) => d.name === destination.name)?.auth as Record<string, unknown> | undefined;
      for (const field of SECRET_AUTH_FIELDS) {
        if (auth[field] !== SECRET_MASK) continue;
        if (stored && stored.kind === auth.kind && typeof stored[field] === 'string') auth[field] = stored[field];
        else delete auth[field]; // a mask with nothing behind it must fail validation, not become the secret
      }
    }
  }
  return next;
}
