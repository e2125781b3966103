/**
 * The desktop's system proxy (what Chromium resolves from the OS settings, a PAC script included) as the
 * environment the Egress reads. The shell resolves it for one https: and one http: address; an explicit
 * HTTPS_PROXY or HTTP_PROXY in the environment wins over it, and `network.proxy` in settings over both.
 */

/** One resolved proxy, or why the system's choice cannot be used. */
export interface ResolvedProxy {
  url?: string;
  unsupported?: string;
}

export interface SystemProxy {
  https: ResolvedProxy;
  http: ResolvedProxy;
}

/**
 * Reads Chromium's answer to resolveProxy(), a PAC result such as "PROXY proxy.lan:3128; DIRECT": the first
 * entry decides, as Chromium's own requests would try it first. SOCKS is not spoken here.
 */
export function parseResolvedProxy(resolved: string): ResolvedProxy {
  const first = resolved.split(';').map((entry) => entry.trim()).find(Boolean);
  if (!first || first.toUpperCase() === 'DIRECT') return {};
  const [kind = '', hostPort = ''] = first.split(/\s+/);
  if (!hostPort) return { unsupported: `the system proxy answer ${JSON.stringify(first)} names no host` };
  switch (kind.toUpperCase()) {
    case 'PROXY':
      return { url: `http://${hostPort}` };
    case 'HTTPS':
      return { url: `https://${hostPort}` };
    default:
      return { unsupported: `the system proxy is ${kind} ${hostPort}, which this appliance does not speak; set an HTTP proxy in Settings → Network` };
  }
}

function hasProxyVariable(env: NodeJS.ProcessEnv): boolean {
  return ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'].some((name) => (env[name] ?? '').trim() !== '');
}

/**
 * `env` with the system proxy added as HTTPS_PROXY/HTTP_PROXY, unless `env` already names a proxy. Loopback
 * stays direct, as Chromium keeps it.
 */
export function withSystemProxy(env: NodeJS.ProcessEnv, system: SystemProxy): NodeJS.ProcessEnv {
  if (hasProxyVariable(env) || (!system.https.url && !system.http.url)) return env;
  return {
    ...env,
    ...(system.https.url ? { HTTPS_PROXY: system.https.url } : {}),
    ...(system.http.url ? { HTTP_PROXY: system.http.url } : {}),
    NO_PROXY: env.NO_PROXY ?? env.no_proxy ?? 'localhost,127.0.0.1,[::1]',
  };
}
