import dimse from 'dcmjs-dimse';
import './implementation.js';
import type { EchoOptions, EchoOutcome, EchoTarget } from '../verification.js';

const { Client } = dimse;
const { CEchoRequest } = dimse.requests;

// PS3.8 9.3.4: A-ASSOCIATE-RJ reasons for source 1 (service user); other sources name provider limits.
const USER_REJECT_REASONS: Record<number, string> = {
  1: 'no reason given',
  2: 'application context name not supported',
  3: 'calling AE title not recognized',
  7: 'called AE title not recognized',
};

function rejectText(reject: { result?: number; source?: number; reason?: number }): string {
  const why = reject.source === 1 ? USER_REJECT_REASONS[reject.reason ?? 0] : undefined;
  const kind = reject.result === 2 ? 'transiently' : 'permanently';
  return `association rejected ${kind}: ${why ?? `source ${reject.source}, reason ${reject.reason}`}`;
}

function networkText(error: Error & { code?: string }, target: EchoTarget): string {
  const where = `${target.host}:${target.port}`;
  // dcmjs-dimse re-wraps socket errors into a new Error, keeping the code only in the text.
  const code = error.code ?? /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ECONNRESET)\b/.exec(error.message)?.[1];
  if (code === 'ECONNREFUSED') return `connection refused at ${where} (nothing listens there)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host ${target.host} not found`;
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return `${where} is unreachable`;
  return `network error talking to ${where}: ${error.message.replace(/^[\s-]*>\s*/, '')}`;
}

/** Verification SCU: one association, one C-ECHO, released; never throws, the outcome says what happened. */
export function echo(target: EchoTarget, options: EchoOptions): Promise<EchoOutcome> {
  const started = performance.now();
  const client = new Client();
  const request = new CEchoRequest();
  return new Promise<EchoOutcome>((resolve) => {
    let settled = false;
    const finish = (status: number | null, error: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ ok: status === 0 && error === null, status, ms: Math.round(performance.now() - started), error });
    };
    const timer = setTimeout(() => {
      finish(null, `no answer from ${target.aeTitle} at ${target.host}:${target.port} within ${options.timeoutMs} ms`);
      try {
        client.abort();
      } catch {
        /* not connected yet: nothing to abort */
      }
    }, options.timeoutMs);
    request.on('response', (response: { getStatus(): number }) => {
      const status = response.getStatus();
      finish(status, status === 0 ? null : `C-ECHO answered with status 0x${status.toString(16).padStart(4, '0')}`);
    });
    client.on('associationRejected', (reject: { result?: number; source?: number; reason?: number }) => finish(null, rejectText(reject)));
    client.on('networkError', (error: Error) => finish(null, networkText(error, target)));
    client.on('closed', () => finish(null, 'the peer closed the connection before answering the C-ECHO'));
    client.addRequest(request);
    client.send(target.host, target.port, options.callingAe, target.aeTitle, {
      connectTimeout: options.timeoutMs,
      associationTimeout: options.timeoutMs,
      pduTimeout: options.timeoutMs,
      associationLingerTimeout: 0,
    });
  });
}
