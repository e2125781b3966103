/**
 * GET requests to the archive destination with forwarding's authentication (forward/auth.ts) and HTTP
 * client (forward/stow-client.ts): an expired token is refreshed once on 401, every failure is an
 * ArchiveReadError, and a time limit covers the request up to its answer's headers (callers that read the
 * whole body extend it over the body with the same Deadline).
 */
import { request, type Dispatcher } from 'undici';
import type { AuthProvider } from '../forward/auth.js';
import { createDispatcher, trimBase } from '../forward/stow-client.js';
import { ArchiveReadError, httpFailure, networkFailure, timedOut } from './archive-errors.js';

export interface ArchiveClientOptions {
  /** The DICOMweb service root, e.g. https://x.dicom.azurehealthcareapis.com/v2 or …/v2/partitions/NAME. */
  baseUrl: string;
  auth: AuthProvider;
  /** Defaults to forwarding's kind of pool, with `idleTimeoutMs` for headers and between body chunks. */
  dispatcher?: Dispatcher;
  /** Longest silence while waiting for headers or body bytes; default 300 s (a destination's requestTimeoutMs). */
  idleTimeoutMs?: number;
  connections?: number;
}

/** A time limit for one operation (one or more requests), and the caller's own cancellation. */
export class Deadline {
  readonly signal: AbortSignal;
  private readonly controller = new AbortController();
  private readonly timer: NodeJS.Timeout | undefined;
  private fired = false;

  constructor(readonly timeoutMs: number | undefined, readonly callerSignal?: AbortSignal) {
    if (timeoutMs !== undefined) {
      this.timer = setTimeout(() => {
        this.fired = true;
        this.controller.abort(new Error(`time limit of ${timeoutMs} ms reached`));
      }, timeoutMs);
      this.timer.unref?.();
    }
    this.signal = callerSignal ? AbortSignal.any([this.controller.signal, callerSignal]) : this.controller.signal;
  }

  get expired(): boolean {
    return this.fired;
  }

  /** Stops the clock (the rest may take as long as it needs, e.g. a stream). */
  clear(): void {
    if (this.timer) clearTimeout(this.timer);
  }

  /** The error for a failure: the caller's abort reason as it is, a timeout, or a classified failure. */
  failure(error: unknown, what: string, url: string): unknown {
    if (this.callerSignal?.aborted) return this.callerSignal.reason;
    if (this.fired) return timedOut(what, url, this.timeoutMs!);
    return networkFailure(error, what, url);
  }
}

export interface ArchiveResponse {
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** undici's body: a Readable, also with dump() to discard the rest. */
  body: Dispatcher.ResponseData['body'];
}

const MAX_PROBLEM_BYTES = 64 * 1024;

export class ArchiveClient {
  readonly baseUrl: string;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;

  constructor(private readonly options: ArchiveClientOptions) {
    this.baseUrl = trimBase(options.baseUrl);
    this.ownsDispatcher = options.dispatcher === undefined;
    this.dispatcher = options.dispatcher ?? createDispatcher({ connections: options.connections ?? 8, timeoutMs: options.idleTimeoutMs ?? 300_000 });
  }

  url(path: string, query?: URLSearchParams): string {
    const search = query && [...query.keys()].length > 0 ? `?${query.toString()}` : '';
    return `${this.baseUrl}${path}${search}`;
  }

  /**
   * GETs `url`. Resolves with any answer but 401 (after one refresh) for the caller to judge; rejects with an
   * ArchiveReadError (or the caller's abort reason). The caller must consume or destroy the body.
   */
  async get(url: string, accept: string, what: string, deadline: Deadline): Promise<ArchiveResponse> {
    let refreshed = false;
    for (;;) {
      let authorization: string | undefined;
      let response: Dispatcher.ResponseData;
      try {
        authorization = await this.options.auth.authorization(refreshed);
        const headers: Record<string, string> = { accept };
        if (authorization) headers.authorization = authorization;
        response = await request(url, { dispatcher: this.dispatcher, method: 'GET', headers, signal: deadline.signal });
      } catch (error) {
        throw deadline.failure(error, what, url);
      }
      if (response.statusCode === 401 && !refreshed && authorization) {
        // The token may have expired since it was cached: one more try with a new one.
        await response.body.dump().catch(() => undefined);
        refreshed = true;
        continue;
      }
      return { url, status: response.statusCode, headers: response.headers, body: response.body };
    }
  }

  /** Reads the whole body as text (JSON answers); the deadline still applies. */
  async text(response: ArchiveResponse, what: string, deadline: Deadline, maxBytes = 256 * 1024 ** 2): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body) {
        size += chunk.length;
        if (size > maxBytes) {
          response.body.on('error', () => undefined);
          response.body.destroy();
          throw new ArchiveReadError('other', `${what} at ${response.url}: the answer is larger than ${maxBytes} bytes`, { url: response.url, status: response.status, retryable: false });
        }
        chunks.push(Buffer.from(chunk));
      }
    } catch (error) {
      throw deadline.failure(error, what, response.url);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** An ArchiveReadError for an answer the caller did not expect, with what its body says. */
  async failure(response: ArchiveResponse, what: string): Promise<ArchiveReadError> {
    let body = '';
    try {
      for await (const chunk of response.body) {
        if (body.length < MAX_PROBLEM_BYTES) body += Buffer.from(chunk).toString('utf8');
      }
    } catch {
      // the status says enough
    }
    return httpFailure(response.status, body, what, response.url);
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}

/** The first value of a response header. */
export function header(response: ArchiveResponse, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
