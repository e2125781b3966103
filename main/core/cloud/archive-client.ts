/**
 * Requests to the archive destination (GETs, and the small PUTs of UPS-RS) with forwarding's authentication (forward/auth.ts): an expired
 * token is refreshed once on 401, every failure is an ArchiveReadError, and a time limit covers the request
 * up to its answer's headers (callers that read the whole body extend it over the body with the same Deadline).
 *
 * Answers are read with node:http, not undici: undici 7's HTTP/1 parser, paused while a slow consumer (the
 * disk, a C-MOVE destination) lags behind, throws an uncatchable assertion when the archive closes the
 * connection at that moment (nodejs/undici#5360, fixed only in undici 8, which needs Node 22), and that
 * took the whole appliance down. node:http keeps what arrived and ends the body normally.
 */
import { once } from 'node:events';
import { type Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AuthProvider } from '../forward/auth.js';
import { Egress } from '../network/egress.js';
import { trimBase } from '../forward/stow-client.js';
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { ArchiveReadError, httpFailure, networkFailure, timedOut } from './archive-errors.js';
import type { ReachabilityObserver } from './archive-reachability.js';

export interface ArchiveClientOptions {
  /** The DICOMweb service root, e.g. https://x.dicom.azurehealthcareapis.com/v2 or …/v2/partitions/NAME. */
  baseUrl: string;
  auth: AuthProvider;
  /** Longest silence while waiting for headers or body bytes; default 300 s (a destination's requestTimeoutMs). */
  idleTimeoutMs?: number;
  connections?: number;
  /** The proxy and CAs to go through; default: the environment's proxy and the default CAs. */
  egress?: Egress;
  /** Told of every request whether the archive answered or could not be reached. */
  reachability?: ReachabilityObserver;
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

/** An answer's body: the response stream, with dump() to discard the rest and keep the connection. */
export type ArchiveBody = IncomingMessage & { dump(): Promise<void> };

export interface ArchiveResponse {
  url: string;
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ArchiveBody;
}

const MAX_PROBLEM_BYTES = 64 * 1024;

export class ArchiveClient {
  readonly baseUrl: string;
  private readonly agent: HttpAgent;
  private readonly egress: Egress;
  private readonly idleTimeoutMs: number;

  constructor(private readonly options: ArchiveClientOptions) {
    this.baseUrl = trimBase(options.baseUrl);
    this.idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
    const pool = { keepAlive: true, maxSockets: options.connections ?? 8 };
    this.egress = options.egress ?? Egress.fromEnvironment();
    this.agent = this.egress.httpAgent(this.baseUrl, pool);
  }

  url(path: string, query?: URLSearchParams): string {
    const search = query && [...query.keys()].length > 0 ? `?${query.toString()}` : '';
    return `${this.baseUrl}${path}${search}`;
  }

  /**
   * GETs `url`. Resolves with any answer but 401 (after one refresh) for the caller to judge; rejects with an
   * ArchiveReadError (or the caller's abort reason). The caller must consume or destroy the body.
   */
  get(url: string, accept: string, what: string, deadline: Deadline): Promise<ArchiveResponse> {
    return this.request('GET', url, { accept }, what, deadline);
  }

  /** Like get(), for any method, with a small body sent whole (UPS-RS state changes). */
  async request(method: string, url: string, send: { accept: string; body?: string; contentType?: string }, what: string, deadline: Deadline): Promise<ArchiveResponse> {
    let refreshed = false;
    for (;;) {
      let authorization: string | undefined;
      let response: IncomingMessage;
      try {
        authorization = await this.options.auth.authorization(refreshed);
        const headers: Record<string, string> = { accept: send.accept };
        if (authorization) headers.authorization = authorization;
        if (send.body !== undefined) {
          headers['content-type'] = send.contentType ?? 'application/octet-stream';
          headers['content-length'] = String(Buffer.byteLength(send.body));
        }
        response = await this.send(method, url, headers, send.body, deadline.signal);
      } catch (error) {
        throw this.observed(deadline.failure(this.egress.explain(error, url), what, url));
      }
      // A 502/503/504 may come from a gateway in front of the archive: it says nothing of the archive itself.
      if ((response.statusCode ?? 0) < 500) this.options.reachability?.answered();
      const body = Object.assign(response, { dump: () => discard(response) });
      if (response.statusCode === 401 && !refreshed && authorization) {
        // The token may have expired since it was cached: one more try with a new one.
        await body.dump().catch(() => undefined);
        refreshed = true;
        continue;
      }
      return { url, status: response.statusCode ?? 0, headers: response.headers, body };
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
      throw this.observed(deadline.failure(error, what, response.url));
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
    this.agent.destroy();
  }

  /** A failure that says the archive cannot be reached now is told to the observer; returns the failure. */
  private observed(failure: unknown): unknown {
    if (failure instanceof ArchiveReadError && failure.kind === 'offline') this.options.reachability?.unreachable(failure.message);
    return failure;
  }

  /** One request; the socket's silence limit holds for the headers and between body chunks alike. */
  private send(method: string, url: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<IncomingMessage> {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const request = send(url, { method, headers, agent: this.agent, signal }, resolve);
      request.setTimeout(this.idleTimeoutMs, () => {
        const silence = Object.assign(new Error(`no data from the archive for ${this.idleTimeoutMs} ms`), { code: 'ETIMEDOUT' });
        request.destroy(silence);
      });
      request.on('error', reject);
      request.end(body);
    });
  }
}

/** Reads the rest of a body and throws it away, so its connection can serve the next request. */
async function discard(response: IncomingMessage): Promise<void> {
  if (response.readableEnded) return;
  response.resume();
  await once(response, 'end');
}

/** A JSON answer that must be an array of DICOM JSON datasets (QIDO-RS, metadata); anything else is an ArchiveReadError. */
export function parseDatasets(text: string, what: string, url: string): ReceivedDicomJson[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ArchiveReadError('other', `${what} at ${url}: the answer is not JSON (${(error as Error).message})`, { url, status: 200, retryable: false });
  }
  if (!Array.isArray(parsed) || !parsed.every((d) => d !== null && typeof d === 'object' && !Array.isArray(d))) {
    throw new ArchiveReadError('other', `${what} at ${url}: the answer is not an array of DICOM JSON datasets`, { url, status: 200, retryable: false });
  }
  return parsed as ReceivedDicomJson[];
}

/** The first value of a response header. */
export function header(response: ArchiveResponse, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
