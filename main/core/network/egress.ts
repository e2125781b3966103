/**
 * Everything that leaves the box goes out through one Egress: the proxy chosen for each URL (settings over
 * environment, NO_PROXY), the CA certificates trusted (defaults, the system's, `network.caFile`), and
 * failures explained in those terms. forward/ (STOW, the connection test, Entra through msal) takes undici
 * dispatchers from it; cloud/ takes node:http agents.
 */
import { Agent as HttpAgent, type AgentOptions } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import type { NetworkSettings } from '../contract/settings.js';
import { guardedLookup } from './address-guard.js';
import { explainEgressError } from './egress-errors.js';
import { HttpsTunnelAgent, HttpTunnelAgent } from './http-tunnel.js';
import { proxyFor, proxyRules, type ProxyRoute, type ProxyRules } from './proxy-choice.js';
import { trustedCas } from './trusted-cas.js';

export interface DispatcherOptions {
  connections: number;
  timeoutMs: number;
}

const NO_PROXY_SETTINGS: NetworkSettings['proxy'] = { url: '', user: '', password: '', noProxy: '' };

export class Egress {
  private constructor(private readonly rules: ProxyRules, readonly ca: string[] | undefined, readonly caFile: string) {}

  /** From `network` settings with the proxy password opened; reads caFile now (CaFileError if unusable). */
  static fromSettings(network: NetworkSettings, env: NodeJS.ProcessEnv = process.env): Egress {
    return new Egress(proxyRules(network.proxy, env), trustedCas(network.caFile), network.caFile);
  }

  /** No settings: the environment's proxy and the default CAs. */
  static fromEnvironment(env: NodeJS.ProcessEnv = process.env): Egress {
    return new Egress(proxyRules(NO_PROXY_SETTINGS, env), trustedCas(''), '');
  }

  /** The proxy for a URL, or undefined for a direct connection. */
  proxyFor(url: string | URL): ProxyRoute | undefined {
    return proxyFor(this.rules, typeof url === 'string' ? new URL(url) : url);
  }

  /** The proxy for https: targets (or else http: ones), without credentials; undefined when none is set. */
  get proxyOrigin(): string | undefined {
    return (this.rules.https ?? this.rules.http)?.origin;
  }

  /** One line for the start log: where requests go, without credentials. */
  describe(): string {
    const proxy = this.rules.https ?? this.rules.http;
    const via = proxy ? `through the proxy ${proxy.origin} (from ${this.rules.source})${this.rules.noProxy.length ? `, not for ${this.rules.noProxy.join(',')}` : ''}` : 'directly';
    return `outgoing requests go ${via}${this.caFile ? `; CAs of ${this.caFile} trusted too` : ''}`;
  }

  /** An undici dispatcher for requests to `url`'s origin. */
  dispatcher(url: string | URL, options: DispatcherOptions): Dispatcher {
    const timeouts = {
      connections: options.connections,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 30_000,
    };
    const connect = { timeout: Math.min(options.timeoutMs, 30_000), ...(this.ca ? { ca: this.ca } : {}) };
    const proxy = this.proxyFor(url);
    // Through a proxy, the proxy resolves the name; directly, the name must not lead to a forbidden address.
    if (!proxy) return new Agent({ ...timeouts, connect: { ...connect, lookup: guardedLookup } });
    return new ProxyAgent({
      ...timeouts,
      uri: proxy.origin,
      // undici 8 sends plain-http requests to the proxy as absolute URIs unless told to tunnel; a CONNECT
      // tunnel for every upstream keeps one path (and one log line per tunnel) whatever the scheme.
      proxyTunnel: true,
      ...(proxy.authorization ? { token: proxy.authorization } : {}),
      requestTls: connect,
      proxyTls: connect,
    });
  }

  /** A node:http(s) agent for requests to `url`'s origin. */
  httpAgent(url: string | URL, options: AgentOptions): HttpAgent {
    const target = typeof url === 'string' ? new URL(url) : url;
    const proxy = this.proxyFor(target);
    const https = target.protocol === 'https:';
    if (proxy) return https ? new HttpsTunnelAgent(proxy, this.ca, options) : new HttpTunnelAgent(proxy, options);
    const direct = { ...options, lookup: guardedLookup };
    return https ? new HttpsAgent({ ...direct, ...(this.ca ? { ca: this.ca } : {}) }) : new HttpAgent(direct);
  }

  /** A failed request's error in terms of the proxy or the CA when either is the cause; others as they are. */
  explain(error: unknown, url: string | URL): unknown {
    const target = typeof url === 'string' ? new URL(url) : url;
    return explainEgressError(error, target, this.proxyFor(target));
  }
}
