/** Retry timing: exponential backoff with full jitter, honouring Retry-After. Pure. */

export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

// The cap bounds how long data waits after the link comes back: one probe a minute costs an offline box nothing.
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, capMs: 60_000 };

/** A server's Retry-After is honoured up to this long; beyond it we assume a misconfigured upstream. */
const MAX_RETRY_AFTER_MS = 60 * 60_000;

/**
 * Delay before attempt number `failures` (1 = after the first failure):
 * uniform in [0, min(cap, base·2^(failures-1))] ("full jitter"), but never sooner than Retry-After.
 */
export function backoffDelayMs(failures: number, policy: BackoffPolicy, retryAfterMs?: number, random: () => number = Math.random): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 30);
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  const jittered = Math.floor(random() * ceiling);
  const floor = retryAfterMs === undefined ? 0 : Math.min(Math.max(retryAfterMs, 0), MAX_RETRY_AFTER_MS);
  return Math.max(jittered, floor);
}

/** Parses Retry-After (delta-seconds or an HTTP-date) to milliseconds from `now`; undefined when absent or invalid. */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
