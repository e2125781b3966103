// The local server beyond loopback speaks HTTPS only: with a self-signed certificate made at first start
// (kept in the data dir, its fingerprint in the log, /api/info and on the wire the same), or with a
// configured certificate and key. A plain-HTTP request with the session token gets no answer in clear.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Appliance } from '../../main/core/appliance.js';
import { freePort } from '../support/net.js';
import { makeTestCa, type TestCa } from '../support/test-ca.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

/** What a client that sends the token in clear to the port gets back: the raw bytes, until the server closes. */
function plainHttpAttempt(port: number, token: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => resolve(received));
    socket.on('close', () => resolve(received));
    socket.on('connect', () => socket.write(`GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n\r\n`));
  });
}

/** GET over HTTPS trusting only `ca`; resolves with the status and the certificate the server showed. */
function httpsGet(port: number, path: string, ca: string, headers: Record<string, string>): Promise<{ status: number; fingerprint256: string; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, ca, headers }, (res) => {
      const fingerprint256 = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, fingerprint256, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTPS for the local server beyond loopback', () => {
  let dataDir = '';
  let w: WebAppliance | undefined;
  let ca: TestCa;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-https-'));
    ca = await makeTestCa(join(dataDir, 'ca'));
  });
  after(async () => {
    await w?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a self-signed certificate made at first start: HTTPS only, one fingerprint in the log, /api/info and on the wire, kept across restarts', async () => {
    const applianceDir = join(dataDir, 'self-signed');
    w = await startWebAppliance({ dataDir: applianceDir, overrides: { httpHost: '0.0.0.0' } });
    assert.match(w.baseUrl, /^https:/);
    const port = Number(new URL(w.baseUrl).port);
    const certPem = await readFile(join(applianceDir, 'https', 'self-signed.pem'), 'utf8');
    const fingerprint = new X509Certificate(certPem).fingerprint256;
    assert.ok((await readFile(join(applianceDir, 'https', 'self-signed.key'))).length > 0);

    const inClear = await plainHttpAttempt(port, w.token);
    assert.doesNotMatch(inClear, /HTTP\/1\.[01] \d{3}/, 'nothing answered in clear');

    const health = await httpsGet(port, '/api/health', certPem, { authorization: `Bearer ${w.token}` });
    assert.equal(health.status, 200);
    assert.equal(health.fingerprint256, fingerprint, 'the certificate on the wire is the one in the data dir');

    const info = (await (await w.api('/api/info')).json()) as { https: { source: string; fingerprint256: string } | null };
    assert.deepEqual([info.https?.source, info.https?.fingerprint256], ['self-signed', fingerprint]);

    const logged = (await logLines(w)).find((line) => line.event === 'https-certificate');
    assert.equal(logged?.fingerprint256, fingerprint);
    assert.equal(logged?.generated, true);

    const signIn = await httpsGet(port, `/?token=${encodeURIComponent(w.token)}`, certPem, {});
    assert.match(String(signIn.headers['set-cookie']), /; Secure/, 'the session cookie is only sent back over HTTPS');

    await w.stop();
    w = await startWebAppliance({ dataDir: applianceDir, overrides: { httpHost: '0.0.0.0' } });
    const again = (await (await w.api('/api/info')).json()) as { https: { fingerprint256: string } | null };
    assert.equal(again.https?.fingerprint256, fingerprint, 'the same certificate after a restart');
    assert.equal((await logLines(w)).filter((line) => line.event === 'https-certificate').at(-1)?.generated, false);
    await w.stop();
    w = undefined;
  });

  test('a configured certificate and key are served; a key of another certificate stops the start naming the field', async () => {
    const server = await ca.issue('edge');
    const other = await ca.issue('other');
    const applianceDir = join(dataDir, 'configured');
    w = await startWebAppliance({
      dataDir: applianceDir, overrides: { httpHost: '0.0.0.0' },
      settings: { http: { tls: { certFile: server.certFile, keyFile: server.keyFile } } },
    });
    const port = Number(new URL(w.baseUrl).port);
    const caPem = await readFile(ca.caFile, 'utf8');
    const health = await httpsGet(port, '/api/health', caPem, { authorization: `Bearer ${w.token}` });
    assert.equal(health.status, 200);
    assert.equal(health.fingerprint256, new X509Certificate(await readFile(server.certFile)).fingerprint256);
    const info = JSON.parse((await httpsGet(port, '/api/info', caPem, { authorization: `Bearer ${w.token}` })).body) as { https: { source: string; certFile: string } | null };
    assert.deepEqual([info.https?.source, info.https?.certFile], ['configured', server.certFile]);
    await w.stop();
    w = undefined;

    const mismatched = join(dataDir, 'mismatched');
    await mkdir(mismatched, { recursive: true });
    await writeFile(join(mismatched, 'settings.json'), JSON.stringify({ http: { tls: { certFile: server.certFile, keyFile: other.keyFile } } }));
    await assert.rejects(
      Appliance.create({ dataDir: mismatched, overrides: { httpHost: '0.0.0.0', apiToken: 'a-token-for-the-lan', httpPort: await freePort(), dimsePort: await freePort() }, announce: () => undefined }),
      /field "http\.tls\.keyFile" has value ".*other\.key": is not the key of the certificate in .*edge\.pem/,
    );
  });

  test('on loopback the server keeps plain HTTP and /api/info says so', async () => {
    w = await startWebAppliance();
    assert.match(w.baseUrl, /^http:/);
    const info = (await (await w.api('/api/info')).json()) as { https: unknown };
    assert.equal(info.https, null);
    await w.stop();
    w = undefined;
  });
});
