/**
 * The CA certificates an outgoing TLS connection trusts: Node's own store (from Node 22.15 with
 * NODE_EXTRA_CA_CERTS), the operating system's store where the runtime can read it (Node 22.15 and later), and the PEM bundle of `network.caFile` (a
 * clinic's TLS-inspecting proxy or private CA). Passing `ca` to Node replaces its default store, so the
 * defaults are listed again here.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';

type CaStore = 'default' | 'system' | 'bundled' | 'extra';
const getCACertificates = (tls as { getCACertificates?: (type?: CaStore) => string[] }).getCACertificates;

/** A bad caFile: the message reads as the rest of a sentence about the field. */
export class CaFileError extends Error {
  constructor(readonly file: string, reason: string) {
    super(reason);
    this.name = 'CaFileError';
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle; throws CaFileError when it cannot be read or holds none. */
export function readCaFile(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CaFileError(file, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) throw new CaFileError(file, 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  for (const [index, pem] of pems.entries()) {
    try {
      new X509Certificate(pem);
    } catch (error) {
      throw new CaFileError(file, `certificate ${index + 1} of ${pems.length} cannot be parsed (${(error as Error).message})`);
    }
  }
  return pems;
}

/** Runtimes since Node 22.15 read the system store; older ones have only their own. */
function systemCas(): string[] {
  try {
    return getCACertificates?.('system') ?? [];
  } catch {
    return [];
  }
}

/**
 * The `ca` option for outgoing TLS: undefined (Node's defaults) when there is nothing to add, else the
 * defaults, the system's store and the file's certificates together.
 */
export function trustedCas(caFile: string): string[] | undefined {
  const extra = caFile ? readCaFile(caFile) : [];
  const system = systemCas();
  if (extra.length === 0 && system.length === 0) return undefined;
  const defaults = getCACertificates?.('default') ?? [...tls.rootCertificates];
  return [...new Set([...defaults, ...system, ...extra])];
}
