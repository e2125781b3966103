/**
 * Which proxy, if any, a request to a URL goes through: `network.proxy` in settings when its url is set,
 * else the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, in either case), as curl and most tools read them.
 */
import type { NetworkSettings } from '../contract/settings.js';

/** A proxy to use, opened (its password in plain text): never log `authorization`. */
export interface ProxyRoute {
  /** scheme://host:port, without credentials: safe to show. */
  readonly origin: string;
  readonly url: URL;
  /** The Proxy-Authorization header value, or undefined. */
  readonly authorization: string | undefined;
}

export interface ProxyRules {
  /** For https: targets. */
  https: ProxyRoute | undefined;
  /** For http: targets. */
  http: ProxyRoute | undefined;
  noProxy: string[];
  /** Where the rules came from, for the start log. */
  source: 'settings' | 'environment' | 'none';
}

function envValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name] ?? env[name.toLowerCase()];
  return value && value.trim() !== '' ? value.trim() : undefined;
}

function route(raw: string, user: string, password: string, from: string): ProxyRoute {
  let url: URL;
  try {
    // HTTP_PROXY=proxy:3128 without a scheme is common; curl reads it as http.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`);
  } catch {
    throw new Error(`${from} is not a proxy URL: ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`${from} must be an http: or https: proxy URL, not ${url.protocol}`);
  const name = user || decodeURIComponent(url.username);
  const secret = password || decodeURIComponent(url.password);
  const origin = `${url.protocol}//${url.host}`;
  return {
    origin,
    url: new URL(origin),
    authorization: name ? `Basic ${Buffer.from(`${name}:${secret}`).toString('base64')}` : undefined,
  };
}

function splitList(value: string | undefined): string[] {
  return (value ?? '').split(/[\s,]+/).map((v) => v.trim().toLowerCase()).filter(Boolean);
}

/** The rules from settings (proxy password already opened) or, with no proxy url there, from `env`. */
export function proxyRules(proxy: NetworkSettings['proxy'], env: NodeJS.ProcessEnv = process.env): ProxyRules {
  if (proxy.url) {
    const chosen = route(proxy.url, proxy.user, proxy.password, 'network.proxy.url');
    return { https: chosen, http: chosen, noProxy: splitList(proxy.noProxy), source: 'settings' };
  }
  const https = envValue(env, 'HTTPS_PROXY');
  const http = envValue(env, 'HTTP_PROXY');
  if (!https && !http) return { https: undefined, http: undefined, noProxy: [], source: 'none' };
  return {
    https: https ? route(https, '', '', 'HTTPS_PROXY') : undefined,
    http: http ? route(http, '', '', 'HTTP_PROXY') : undefined,
    noProxy: splitList(envValue(env, 'NO_PROXY')),
    source: 'environment',
  };
}

function defaultPort(protocol: string): string {
  return protocol === 'https:' ? '443' : '80';
}

/** Whether one NO_PROXY entry covers host:port: `*`, a name, `.domain` or `*.domain` (the name and below), with an optional :port. */
function bypassedBy(entry: string, host: string, port: string): boolean {
  if (entry === '*') return true;
  let name = entry;
  let entryPort: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    name = bracketed[1]!;
    entryPort = bracketed[2];
  } else if (/^[^:]+:\d+$/.test(entry)) {
    [name, entryPort] = entry.split(':') as [string, string];
  }
  if (entryPort && entryPort !== port) return false;
  name = name.replace(/^\*?\./, '');
  return host === name || host.endsWith(`.${name}`);
}

/** The proxy for `target`, or undefined to connect directly. */
export function proxyFor(rules: ProxyRules, target: URL): ProxyRoute | undefined {
  const chosen = target.protocol === 'https:' ? rules.https : rules.http;
  if (!chosen) return undefined;
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = target.port || defaultPort(target.protocol);
  return rules.noProxy.some((entry) => bypassedBy(entry, host, port)) ? undefined : chosen;
}
