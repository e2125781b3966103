/**
 * Network failures of outgoing requests in words a clinic's IT person can act on: which proxy could not
 * be reached or refused, and an upstream certificate signed by a CA this box does not trust.
 */
import type { ProxyRoute } from './proxy-choice.js';

export const UNTRUSTED_CA_MESSAGE =
  "the upstream's certificate is signed by a CA this box does not trust: add it in Settings → Network";

/** OpenSSL verification codes that mean "no trusted CA signed this chain". */
const UNTRUSTED_CA_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE',
]);

/** Failures to open a connection: with a proxy in the way, the connection that failed is the one to the proxy. */
const CONNECT_CODES = new Set([
  'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT',
]);

/** A failure explained: `code` is kept (callers classify by it), `message` says what happened and what to do. */
export class EgressError extends Error {
  override name = 'EgressError';
  constructor(message: string, readonly code: string, override readonly cause: unknown) {
    super(message);
  }
}

/** The code of a failure, from the error or its cause (undici and fetch wrap them). */
export function errorCode(error: unknown): string | undefined {
  const err = error as { code?: unknown; cause?: { code?: unknown; errors?: Array<{ code?: unknown }> } };
  const code = err?.code ?? err?.cause?.code ?? err?.cause?.errors?.[0]?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  const err = error as { message?: string; cause?: { message?: string } };
  return err?.cause?.message ?? err?.message ?? String(error);
}

/** The status a proxy answered to CONNECT, as undici reports it (`Proxy response (407) !== 200 …`). */
function tunnelStatus(error: unknown): number | undefined {
  const match = /Proxy response \((\d{3})\)/.exec(`${(error as Error)?.message ?? ''} ${messageOf(error)}`);
  if (match) return Number(match[1]);
  const status = (error as { proxyStatus?: unknown })?.proxyStatus;
  return typeof status === 'number' ? status : undefined;
}

/** A proxy's answer to CONNECT other than 200, as an error naming the proxy. */
export function proxyStatusError(proxy: ProxyRoute, status: number, target: string): EgressError {
  const error = new EgressError(describeProxyStatus(proxy, status, target), 'EPROXY', undefined);
  return Object.assign(error, { proxyStatus: status });
}

function describeProxyStatus(proxy: ProxyRoute, status: number, target: string): string {
  if (status === 407) return `the proxy ${proxy.origin} asks for authentication (HTTP 407): set its user and password in Settings → Network`;
  if (status === 403) return `the proxy ${proxy.origin} refused the connection to ${target} (HTTP 403): ask for ${target} to be allowed`;
  return `the proxy ${proxy.origin} could not open a connection to ${target} (HTTP ${status})`;
}

/**
 * The error to report for a failed request to `target` that went through `proxy` (or directly): proxy and
 * CA problems get their explanation, anything else is returned as it is.
 */
export function explainEgressError(error: unknown, target: URL, proxy: ProxyRoute | undefined): unknown {
  if (error instanceof EgressError) return error;
  const code = errorCode(error);
  if (code && UNTRUSTED_CA_CODES.has(code)) {
    return new EgressError(`${UNTRUSTED_CA_MESSAGE} (${target.host}: ${code})`, code, error);
  }
  if (!proxy) return error;
  const hostPort = `${target.hostname}:${target.port || (target.protocol === 'https:' ? 443 : 80)}`;
  const status = tunnelStatus(error);
  if (status !== undefined) return new EgressError(describeProxyStatus(proxy, status, hostPort), 'EPROXY', error);
  if (code && CONNECT_CODES.has(code)) {
    return new EgressError(`the proxy ${proxy.origin} cannot be reached (${code}): check Settings → Network or HTTPS_PROXY`, code, error);
  }
  return error;
}
