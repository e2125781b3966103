import { SECRET_MASK, type MaskedSettings } from '../contract/api/settings.js';
import { destinationSchema, type DestinationSettings, type Settings } from '../contract/settings.js';
import { valueAt } from '../settings/settings-paths.js';

const SECRET_AUTH_FIELDS = ['password', 'token', 'clientSecret'] as const;

/**
 * The fields that decide where a destination secret (or the token bought with it) is sent. A kept
 * secret stays bound to them: changing any of them while sending the mask back is refused, so an
 * API user cannot redirect a stored secret to a host of their choice.
 */
const SECRET_BINDING: readonly string[] = ['baseUrl', 'auth.tenantId', 'auth.clientId', 'auth.authority', 'auth.scope'];

export function maskSettings(settings: Settings): MaskedSettings {
  const copy = structuredClone(settings) as Settings;
  if (copy.http.apiToken) copy.http.apiToken = SECRET_MASK;
  if (copy.http.basicAuth) copy.http.basicAuth.passwordHash = SECRET_MASK;
  if (copy.network.proxy.password) copy.network.proxy.password = SECRET_MASK;
  for (const destination of copy.destinations) {
    const auth = destination.auth as Record<string, unknown>;
    for (const field of SECRET_AUTH_FIELDS) if (typeof auth[field] === 'string' && auth[field]) auth[field] = SECRET_MASK;
  }
  return copy as MaskedSettings;
}

export interface Unmasked {
  value: unknown;
  /** One line per secret whose mask was refused, in the settings error format (`field "…" has value …: …`). */
  problems: string[];
}

/**
 * The binding fields whose value differs between the incoming destination (defaults applied) and the
 * stored one; undefined when the incoming destination does not validate (it is refused anyway).
 */
function changedBinding(incoming: unknown, stored: DestinationSettings): string[] | undefined {
  const parsed = destinationSchema.safeParse(incoming);
  if (!parsed.success) return undefined;
  return SECRET_BINDING.filter((field) => valueAt(parsed.data, field) !== valueAt(stored, field));
}

/**
 * Puts the stored secrets back into one destination where the client returned the mask, if the
 * destination still sends them where they were entered for. `path` names the destination in problems.
 */
export function unmaskDestination(incoming: unknown, stored: DestinationSettings | undefined, path: string): Unmasked {
  if (!incoming || typeof incoming !== 'object') return { value: incoming, problems: [] };
  const next = structuredClone(incoming) as Record<string, any>;
  const auth = next.auth;
  const problems: string[] = [];
  if (!auth || typeof auth !== 'object') return { value: next, problems };
  const storedAuth = stored?.auth as Record<string, unknown> | undefined;
  for (const field of SECRET_AUTH_FIELDS) {
    if (auth[field] !== SECRET_MASK) continue;
    if (!stored || !storedAuth || storedAuth.kind !== auth.kind || typeof storedAuth[field] !== 'string') {
      delete auth[field]; // a mask with nothing behind it must fail validation, not become the secret
      continue;
    }
    const changed = changedBinding(incoming, stored);
    if (changed === undefined || changed.length > 0) {
      // Fail closed: without a verdict the mask stays unresolved, and validation names what is missing.
      if (changed) problems.push(`field "${path}.auth.${field}" has value "${SECRET_MASK}": re-enter the secret, because ${changed.join(' and ')} changed`);
      delete auth[field];
      continue;
    }
    auth[field] = storedAuth[field];
  }
  return { value: next, problems };
}

/** Puts the stored secrets back where the client returned the mask (see unmaskDestination for destinations). */
export function unmaskSettings(incoming: unknown, current: Settings): Unmasked {
  if (!incoming || typeof incoming !== 'object') return { value: incoming, problems: [] };
  const next = structuredClone(incoming) as Record<string, any>;
  const problems: string[] = [];
  if (next.http && typeof next.http === 'object') {
    if (next.http.apiToken === SECRET_MASK) next.http.apiToken = current.http.apiToken;
    if (next.http.basicAuth?.passwordHash === SECRET_MASK) {
      if (current.http.basicAuth) next.http.basicAuth.passwordHash = current.http.basicAuth.passwordHash;
      else delete next.http.basicAuth;
    }
  }
  const proxy = next.network?.proxy;
  if (proxy && typeof proxy === 'object' && proxy.password === SECRET_MASK) {
    // Kept only for the proxy and user it was entered for, so a stored password cannot be sent elsewhere.
    const stored = current.network.proxy;
    if (!stored.password) delete proxy.password;
    else if ((proxy.url ?? '') !== stored.url || (proxy.user ?? '') !== stored.user) {
      problems.push(`field "network.proxy.password" has value "${SECRET_MASK}": re-enter the password, because the proxy url or user changed`);
      delete proxy.password;
    } else proxy.password = stored.password;
  }
  if (Array.isArray(next.destinations)) {
    next.destinations = next.destinations.map((destination: unknown, index: number) => {
      const name = (destination as { name?: unknown } | null)?.name;
      const stored = current.destinations.find((d) => d.name === name);
      const unmasked = unmaskDestination(destination, stored, `destinations.${index}`);
      problems.push(...unmasked.problems);
      return unmasked.value;
    });
  }
  return { value: next, problems };
}
