import { X509Certificate } from 'node:crypto';

/**
 * Whether a certificate error on `url` is the appliance's own HTTPS certificate (a self-signed one, or one
 * signed by a CA this desktop does not know) on the window's own origin: then the window trusts it, pinned by
 * its SHA-256 fingerprint; any other certificate error stays an error.
 */
export function isOwnCertificate(url: string, certificatePem: string, appOrigin: string, fingerprint256: string | undefined): boolean {
  if (!fingerprint256) return false;
  let origin: string;
  try {
    origin = new URL(url).origin;
  } catch {
    return false;
  }
  if (origin !== appOrigin) return false;
  try {
    return new X509Certificate(certificatePem).fingerprint256 === fingerprint256;
  } catch {
    return false;
  }
}

/** The origin the window loads: the local server by a loopback address, in the scheme it speaks. */
export function windowOrigin(host: string, port: number, https: boolean): string {
  const reachable = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `${https ? 'https' : 'http'}://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}
