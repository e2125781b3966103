/**
 * node:http agents that reach their origin through an HTTP proxy with CONNECT, for the clients that use
 * node:http rather than undici (cloud/archive-client.ts). Hand-written rather than https-proxy-agent:
 * that one passes a proxy's refusal (403, 407) on as if the origin had answered, so a proxy refusing
 * would read as the archive refusing our identity.
 */
import { Agent as HttpAgent, request as httpRequest, type AgentOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { proxyStatusError } from './egress-errors.js';
import type { ProxyRoute } from './proxy-choice.js';

type Callback = (error: Error | null, socket?: Duplex) => void;

/** A proxy that accepts the connection but never answers CONNECT must not hold a request forever. */
const CONNECT_TIMEOUT_MS = 30_000;

/** Opens a tunnel to host:port through the proxy; rejects with the proxy's refusal or the connection error. */
export function openTunnel(proxy: ProxyRoute, host: string, port: number, ca: string[] | undefined): Promise<Duplex> {
  const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  return new Promise((resolve, reject) => {
    const send = proxy.url.protocol === 'https:' ? httpsRequest : httpRequest;
    const request = send({
      host: proxy.url.hostname.replace(/^\[|\]$/g, ''),
      port: proxy.url.port || (proxy.url.protocol === 'https:' ? 443 : 80),
      method: 'CONNECT',
      path: target,
      headers: { host: target, ...(proxy.authorization ? { 'proxy-authorization': proxy.authorization } : {}) },
      agent: false,
      ...(ca ? { ca } : {}),
    });
    request.once('connect', (response, socket, head) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        reject(proxyStatusError(proxy, response.statusCode ?? 0, target));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    request.once('response', (response) => {
      response.resume();
      reject(proxyStatusError(proxy, response.statusCode ?? 0, target));
    });
    // A timer of our own, not request.setTimeout: that one stays on the socket, which becomes the tunnel.
    const timer = setTimeout(() => {
      request.destroy(Object.assign(new Error(`no answer to CONNECT ${target} within ${CONNECT_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' }));
    }, CONNECT_TIMEOUT_MS);
    timer.unref();
    for (const settled of ['connect', 'response', 'error'] as const) request.once(settled, () => clearTimeout(timer));
    request.once('error', reject);
    request.end();
  });
}

/** Plain HTTP to the origin, inside a CONNECT tunnel. */
export class HttpTunnelAgent extends HttpAgent {
  constructor(private readonly proxy: ProxyRoute, options: AgentOptions) {
    super(options);
  }

  override createConnection(options: { host?: string | null; port?: number | string | null }, callback: Callback): undefined {
    openTunnel(this.proxy, options.host ?? 'localhost', Number(options.port ?? 80), undefined).then((socket) => callback(null, socket), callback);
    return undefined;
  }
}

/** TLS to the origin (checked against `ca`), inside a CONNECT tunnel. */
export class HttpsTunnelAgent extends HttpsAgent {
  constructor(private readonly proxy: ProxyRoute, private readonly ca: string[] | undefined, options: AgentOptions) {
    super({ ...options, ...(ca ? { ca } : {}) });
  }

  override createConnection(options: ConnectionOptions & { host?: string | null; port?: number | string | null }, callback: Callback): undefined {
    const host = options.host ?? 'localhost';
    openTunnel(this.proxy, host, Number(options.port ?? 443), this.ca).then((socket) => {
      const secure = tlsConnect({ ...options, socket, servername: options.servername || (isIP(host) ? undefined : host) });
      let settled = false;
      secure.once('secureConnect', () => {
        settled = true;
        callback(null, secure);
      });
      secure.once('error', (error) => {
        if (settled) return;
        settled = true;
        callback(error);
      });
    }, callback);
    return undefined;
  }
}
