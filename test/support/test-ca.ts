// A throwaway certificate authority made with openssl, and server certificates it signs, for TLS peers
// (stunnel in front of Orthanc or the Entra double) that the appliance must learn to trust.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireTool, runOk } from './process.js';

export interface TestCa {
  /** The CA certificate, PEM: what `network.caFile` points at. */
  caFile: string;
  /** A server certificate and key for `name`, valid for 127.0.0.1 and localhost, signed by this CA. */
  issue(name: string): Promise<{ certFile: string; keyFile: string }>;
}

export async function makeTestCa(dir: string, commonName = 'DICOM Edge test CA'): Promise<TestCa> {
  const openssl = requireTool('openssl', 'openssl');
  await mkdir(dir, { recursive: true });
  const caFile = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  await runOk(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caFile, '-days', '2',
    '-subj', `/CN=${commonName}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return {
    caFile,
    async issue(name) {
      const keyFile = join(dir, `${name}.key`);
      const csr = join(dir, `${name}.csr`);
      const certFile = join(dir, `${name}.pem`);
      const ext = join(dir, `${name}.ext`);
      await runOk(openssl, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${name}`]);
      await writeFile(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
      await runOk(openssl, ['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
      return { certFile, keyFile };
    },
  };
}
