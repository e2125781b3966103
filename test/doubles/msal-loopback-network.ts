// An msal-node network client (INetworkModule) that sends every request to one loopback double.
//
// msal-node refuses authorities that are not https (ClientConfigurationError
// `authority_uri_insecure`), so a test gives msal an https authority such as
// `https://127.0.0.1:PORT/TENANT` and this client carries each call to `http://127.0.0.1:PORT`
// with the same path and query. Calls to any other host (for example instance discovery on
// login.microsoftonline.com) go to the double too, so nothing leaves the machine; every URL
// msal asked for is kept in `urls` for assertions.
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node';

export interface LoopbackNetworkClient extends INetworkModule {
  /** Every URL msal asked for, as msal wrote it, in order. */
  readonly urls: string[];
}

export function loopbackNetworkClient(targetOrigin: string): LoopbackNetworkClient {
  const urls: string[] = [];
  const send = async <T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions, timeout?: number) => {
    urls.push(url);
    const asked = new URL(url);
    const target = new URL(asked.pathname + asked.search, targetOrigin);
    const response = await fetch(target, {
      method,
      headers: options?.headers,
      body: method === 'POST' ? (options?.body ?? '') : undefined,
      signal: timeout ? AbortSignal.timeout(timeout) : undefined,
    });
    const headers: Record<string, string> = {};
    response.headers.forEach((value, key) => {
      headers[key] = value;
    });
    const result: NetworkResponse<T> = { headers, body: (await response.json()) as T, status: response.status };
    return result;
  };
  return {
    urls,
    sendGetRequestAsync: <T>(url: string, options?: NetworkRequestOptions, timeout?: number) =>
      send<T>('GET', url, options, timeout),
    sendPostRequestAsync: <T>(url: string, options?: NetworkRequestOptions) => send<T>('POST', url, options),
  };
}
