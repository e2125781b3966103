/**
 * msal-node's network client (INetworkModule) over undici, through the appliance's Egress: Entra token
 * requests take the same proxy and trust the same CAs as forwarding. A failure is thrown as an msal
 * AuthError so msal passes its message on (it replaces other errors with a bare "network_error").
 */
import { AuthError, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node';
import { request, type Dispatcher } from 'undici';
import type { Egress } from '../network/egress.js';

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_BODY_CHARS = 1024 * 1024;

export function egressNetworkClient(egress: Egress): INetworkModule {
  const dispatchers = new Map<string, Dispatcher>();
  const dispatcherFor = (url: URL) => {
    let dispatcher = dispatchers.get(url.origin);
    if (!dispatcher) {
      dispatcher = egress.dispatcher(url, { connections: 2, timeoutMs: DEFAULT_TIMEOUT_MS });
      dispatchers.set(url.origin, dispatcher);
    }
    return dispatcher;
  };
  const send = async <T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions, timeoutMs?: number): Promise<NetworkResponse<T>> => {
    const target = new URL(url);
    try {
      const response = await request(target, {
        dispatcher: dispatcherFor(target),
        method,
        headers: options?.headers,
        body: method === 'POST' ? (options?.body ?? '') : undefined,
        signal: AbortSignal.timeout(timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
      const text = (await response.body.text()).slice(0, MAX_BODY_CHARS);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      return { headers, body: parseBody(text, response.statusCode) as T, status: response.statusCode };
    } catch (error) {
      const explained = egress.explain(error, target) as Error;
      const text = `${method} ${target.origin}${target.pathname} failed: ${explained?.message ?? String(explained)}`;
      // Set after construction: msal's constructor arguments have moved between versions, these fields have not.
      throw Object.assign(new AuthError('network_error', ''), { errorMessage: text, message: `network_error: ${text}` });
    }
  };
  return {
    sendGetRequestAsync: <T>(url: string, options?: NetworkRequestOptions, timeout?: number) => send<T>('GET', url, options, timeout),
    sendPostRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => send<T>('POST', url, options),
  };
}

/** msal reads JSON answers; anything else (a proxy's HTML error page) becomes an OAuth-style error it can show. */
function parseBody(text: string, status: number): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const excerpt = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
    return { error: 'invalid_response', error_description: `HTTP ${status}, not JSON${excerpt ? `: ${excerpt}` : ''}` };
  }
}
