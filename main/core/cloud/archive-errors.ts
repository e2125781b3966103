/**
 * Why a read from the archive destination failed, in the four classes its callers act on: offline (answer
 * locally, retry later), auth (a user must act), not-found, and other. Messages name the URL, the HTTP status
 * and what the archive's problem body says; tokens are never in them (they travel in headers only).
 */
import { SignInRequiredError, TokenError } from '../forward/auth.js';
import { EgressError } from '../network/egress-errors.js';

export type ArchiveFailureKind = 'offline' | 'auth' | 'not-found' | 'other';

export class ArchiveReadError extends Error {
  override name = 'ArchiveReadError';
  constructor(
    readonly kind: ArchiveFailureKind,
    message: string,
    readonly details: { url: string; status?: number; code?: string; retryable: boolean },
  ) {
    super(message);
  }

  get url(): string {
    return this.details.url;
  }

  get status(): number | undefined {
    return this.details.status;
  }

  /** Worth trying again later without anyone acting: offline, or an answer that says "not now" (408, 429, 5xx). */
  get retryable(): boolean {
    return this.details.retryable;
  }
}

/** Connection-level failures that mean the archive cannot be reached now. */
const OFFLINE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_DESTROYED',
  // network/egress-errors.ts: a proxy that refused the tunnel (403, 407, 5xx); it may let us through later.
  'EPROXY',
]);

function errorCode(error: unknown): string | undefined {
  const err = error as { code?: unknown; cause?: { code?: unknown; errors?: Array<{ code?: unknown }> } };
  const code = err?.code ?? err?.cause?.code ?? err?.cause?.errors?.[0]?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A failure before or while receiving an answer (no HTTP status), as an ArchiveReadError. */
export function networkFailure(error: unknown, what: string, url: string): ArchiveReadError {
  if (error instanceof ArchiveReadError) return error;
  const code = errorCode(error);
  const message = (error as Error)?.message ?? String(error);
  if (error instanceof SignInRequiredError) return new ArchiveReadError('auth', `${what} at ${url}: ${message}`, { url, retryable: false });
  if (error instanceof TokenError) {
    // A token endpoint that refuses the credential needs a user; one that cannot be reached is like being offline.
    const kind = error.permanent ? 'auth' : 'offline';
    return new ArchiveReadError(kind, `${what} at ${url}: ${message}`, { url, retryable: !error.permanent });
  }
  if (error instanceof EgressError) {
    // Already says what failed (the proxy, an untrusted CA) and what to do.
    return new ArchiveReadError(code && OFFLINE_CODES.has(code) ? 'offline' : 'other', `${what} at ${url}: ${message}`, { url, code, retryable: Boolean(code && OFFLINE_CODES.has(code)) });
  }
  if (code && OFFLINE_CODES.has(code)) {
    return new ArchiveReadError('offline', `${what} at ${url}: the archive is unreachable (${code}: ${message})`, { url, code, retryable: true });
  }
  return new ArchiveReadError('other', `${what} at ${url}: ${code ? `${code}: ` : ''}${message}`, { url, code, retryable: false });
}

/** No answer within the caller's time limit. */
export function timedOut(what: string, url: string, ms: number): ArchiveReadError {
  return new ArchiveReadError('offline', `${what} at ${url}: no answer within ${ms} ms`, { url, code: 'TIMEOUT', retryable: true });
}

/** An HTTP answer that is not the one asked for. `body` is the start of the answer's text. */
export function httpFailure(status: number, body: string, what: string, url: string): ArchiveReadError {
  const detail = describeProblem(body);
  const message = `${what} at ${url}: HTTP ${status}${detail ? ` (${detail})` : ''}`;
  const retryable = status === 408 || status === 429 || status >= 500;
  if (status === 401 || status === 403) {
    const hint = status === 403 ? '; the identity needs read access (e.g. the "DICOM Data Reader" role)' : '';
    return new ArchiveReadError('auth', `${message}${hint}`, { url, status, retryable: false });
  }
  if (status === 404) return new ArchiveReadError('not-found', message, { url, status, retryable: false });
  return new ArchiveReadError('other', message, { url, status, retryable });
}

const EXCERPT_CHARS = 300;

/**
 * What a problem body says: the messages of the Azure DICOM service ({errors: [{code, message}]}), RFC 9457
 * problem details ({title, detail}), Orthanc ({Message, Details}), or else the text without markup.
 */
export function describeProblem(body: string): string {
  const text = body.trim();
  if (text === '') return '';
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const pieces: string[] = [];
    if (Array.isArray(parsed.errors)) {
      for (const e of parsed.errors as Array<Record<string, unknown>>) pieces.push([e.code, e.message].filter(Boolean).join(': '));
    }
    for (const key of ['title', 'detail', 'Message', 'Details', 'message', 'error_description']) {
      if (typeof parsed[key] === 'string' && parsed[key]) pieces.push(parsed[key] as string);
    }
    if (pieces.length > 0) return pieces.join('; ').slice(0, EXCERPT_CHARS);
  } catch {
    // not JSON
  }
  return text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, EXCERPT_CHARS);
}
