/**
 * The local server's TLS certificate when it listens beyond loopback: the configured http.tls files, or a
 * self-signed certificate made at first start and kept in the data dir (so its fingerprint, once checked
 * by a user, stays the same across restarts). Basic auth and the session token then never cross the LAN
 * in clear.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { generate } from 'selfsigned';
import { isIpLiteral, isLoopbackHost } from '../contract/addresses.js';
import type { Settings } from '../contract/settings.js';

export interface HttpsIdentity {
  key: string;
  cert: string;
  /** SHA-256 of the certificate, colon-separated hex, as browsers show it. */
  fingerprint256: string;
  source: 'configured' | 'self-signed';
  certFile: string;
  /** Made at this start (first start, or the previous one expired). */
  generated: boolean;
  notAfter: string;
}

/** A configured certificate or key that cannot be used: `field` names the setting. */
export class HttpsIdentityError extends Error {
  override name = 'HttpsIdentityError';
  constructor(readonly field: 'http.tls.certFile' | 'http.tls.keyFile', readonly file: string, reason: string) {
    super(reason);
  }
}

const SELF_SIGNED_DIR = 'https';
const VALID_DAYS = 825;
/** Made again this long before it expires, so a box left running keeps a valid one after its next start. */
const RENEW_BEFORE_MS = 30 * 24 * 3_600_000;

/** Whether the server must speak HTTPS for this bind address. */
export function needsHttps(http: Settings['http']): boolean {
  return !isLoopbackHost(http.host);
}

/** The certificate and key to serve HTTPS with; undefined for a loopback bind (plain HTTP). */
export async function httpsIdentity(http: Settings['http'], dataDir: string): Promise<HttpsIdentity | undefined> {
  if (!needsHttps(http)) return undefined;
  if (http.tls.certFile) return configuredIdentity(http.tls.certFile, http.tls.keyFile);
  return selfSignedIdentity(http.host, dataDir);
}

function readField(field: 'http.tls.certFile' | 'http.tls.keyFile', file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new HttpsIdentityError(field, file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** Checks a configured pair now, so a bad one stops the start naming the field instead of failing each handshake. */
export function configuredIdentity(certFile: string, keyFile: string): HttpsIdentity {
  const cert = readField('http.tls.certFile', certFile);
  const key = readField('http.tls.keyFile', keyFile);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new HttpsIdentityError('http.tls.certFile', certFile, `is not a PEM certificate (${(error as Error).message})`);
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new HttpsIdentityError('http.tls.keyFile', keyFile, `is not a PEM private key without a passphrase (${(error as Error).message})`);
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new HttpsIdentityError('http.tls.keyFile', keyFile, `is not the key of the certificate in ${certFile}`);
  return { key, cert, fingerprint256: certificate.fingerprint256, source: 'configured', certFile, generated: false, notAfter: certificate.validTo };
}

function usable(certFile: string, keyFile: string): HttpsIdentity | undefined {
  if (!existsSync(certFile) || !existsSync(keyFile)) return undefined;
  try {
    const identity = configuredIdentity(certFile, keyFile);
    if (Date.parse(identity.notAfter) - Date.now() < RENEW_BEFORE_MS) return undefined;
    return { ...identity, source: 'self-signed' };
  } catch {
    return undefined; // damaged: made again below
  }
}

/** The names a LAN client may use: this host's name, the bound address, and every address of its interfaces. */
function altNames(host: string): Array<{ type: 2; value: string } | { type: 7; ip: string }> {
  const names = new Set([hostname(), 'localhost']);
  const ips = new Set(['127.0.0.1', '::1']);
  if (isIpLiteral(host) && host !== '0.0.0.0' && host !== '::') ips.add(host.replace(/^\[|\]$/g, ''));
  else if (!isIpLiteral(host)) names.add(host);
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) if (!entry.internal && !entry.address.startsWith('fe80:')) ips.add(entry.address);
  }
  return [...[...names].map((value) => ({ type: 2 as const, value })), ...[...ips].map((ip) => ({ type: 7 as const, ip }))];
}

async function selfSignedIdentity(host: string, dataDir: string): Promise<HttpsIdentity> {
  const dir = join(dataDir, SELF_SIGNED_DIR);
  const certFile = join(dir, 'self-signed.pem');
  const keyFile = join(dir, 'self-signed.key');
  const kept = usable(certFile, keyFile);
  if (kept) return kept;
  const notBeforeDate = new Date();
  const pems = await generate([{ name: 'commonName', value: `DICOM Edge ${hostname()}` }], {
    keyType: 'ec', curve: 'P-256', algorithm: 'sha256', notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + VALID_DAYS * 24 * 3_600_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: altNames(host) },
    ],
  });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Key first, each through a temp file: a crash in between leaves a pair that does not match, made again next start.
  writeAtomically(keyFile, pems.private, 0o600);
  writeAtomically(certFile, pems.cert, 0o644);
  const certificate = new X509Certificate(pems.cert);
  return { key: pems.private, cert: pems.cert, fingerprint256: certificate.fingerprint256, source: 'self-signed', certFile, generated: true, notAfter: certificate.validTo };
}

function writeAtomically(path: string, text: string, mode: number): void {
  const temp = `${path}.new`;
  writeFileSync(temp, text, { mode });
  renameSync(temp, path);
}
