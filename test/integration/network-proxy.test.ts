// Everything that leaves the box through a real proxy (Debian's tinyproxy, started here): forwarding,
// archive reads, Entra token requests and the connection test. The proxy down, asking for a password or
// refusing gives an error that names it, nothing is lost, and the queue resumes when the proxy is back.
// And an upstream behind TLS (stunnel4) whose certificate a private test CA signed: without
// network.caFile the error says what to do; with it the study arrives byte-identical.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { ArchiveReader } from '../../main/core/cloud/archive-reader.js';
import { ArchiveReadError } from '../../main/core/cloud/archive-errors.js';
import { Egress } from '../../main/core/network/egress.js';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { EntraDouble } from '../doubles/entra.js';
import { startForwarding, waitFor, type Forwarding } from '../support/forward-harness.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { startStunnel, type Stunnel } from '../support/stunnel.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { makeTestCa, type TestCa } from '../support/test-ca.js';
import { Tinyproxy } from '../support/tinyproxy.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const small = { rows: 8, columns: 8 } as const;
const quickRetry = { retryBaseMs: 50, retryCapMs: 300 };

async function assertStoredIdentical(orthanc: OrthancPeer, instances: readonly GeneratedInstance[]): Promise<void> {
  for (const instance of instances) {
    const lookup = await (await fetch(`${orthanc.httpUrl}/tools/lookup`, { method: 'POST', body: instance.sopInstanceUid })).json() as Array<{ ID: string; Type: string }>;
    const id = lookup.find((l) => l.Type === 'Instance')?.ID;
    assert.ok(id, `Orthanc holds ${instance.sopInstanceUid}`);
    const bytes = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
    assert.equal(sha(bytes), sha(instance.buffer), `identical bytes for ${instance.sopInstanceUid}`);
  }
}

describe('outgoing traffic through a real proxy (tinyproxy)', () => {
  let dir = '';
  let orthanc: OrthancPeer;
  let proxy: Tinyproxy;
  let fwd: Forwarding | undefined;
  const savedEnv = { ...process.env };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'net-proxy-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    await mkdir(join(dir, 'proxy'));
    proxy = await Tinyproxy.start({ dir: join(dir, 'proxy') });
  });
  afterEach(async () => {
    await fwd?.close();
    fwd = undefined;
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy']) {
      if (savedEnv[name] === undefined) delete process.env[name];
      else process.env[name] = savedEnv[name];
    }
    await proxy.resume();
  });
  after(async () => {
    await proxy?.stop();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const status = () => fwd!.service.status()[0]!;
  const describeState = () => JSON.stringify(status());
  const orthancTunnel = () => `127.0.0.1:${orthanc.httpPort}`;

  it('forwarding goes through network.proxy: the study reaches Orthanc byte-identical and the proxy log shows the tunnel', async () => {
    const before = (await proxy.tunnels()).length;
    fwd = await startForwarding({
      destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, maxInstancesPerRequest: 3, ...quickRetry }],
      network: { proxy: { url: proxy.url } },
    });
    const study = makeStudy({ series: 1, instancesPerSeries: 5, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === study.length, describeState);
    await assertStoredIdentical(orthanc, study);
    const tunnels = (await proxy.tunnels()).slice(before);
    assert.ok(tunnels.includes(orthancTunnel()), `the proxy carried the STOW requests: ${JSON.stringify(tunnels)}`);
  });

  it('HTTP_PROXY from the environment is used when settings name no proxy, and NO_PROXY bypasses it', async () => {
    process.env.HTTP_PROXY = proxy.url;
    const before = (await proxy.tunnels()).length;
    fwd = await startForwarding({ destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, ...quickRetry }] });
    const first = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
    await fwd.ingest(first.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === first.length, describeState);
    const viaEnvironment = (await proxy.tunnels()).slice(before);
    assert.ok(viaEnvironment.includes(orthancTunnel()), `HTTP_PROXY was honoured: ${JSON.stringify(viaEnvironment)}`);
    await fwd.close();

    process.env.NO_PROXY = 'localhost,127.0.0.1';
    const beforeBypass = (await proxy.tunnels()).length;
    fwd = await startForwarding({ destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, ...quickRetry }] });
    const second = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
    await fwd.ingest(second.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === second.length, describeState);
    assert.deepEqual((await proxy.tunnels()).slice(beforeBypass), [], 'NO_PROXY: straight to the upstream');
  });

  it('the proxy down: the error names it, nothing is lost, and the queue resumes when it is back', async () => {
    fwd = await startForwarding({
      destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, ...quickRetry }],
      network: { proxy: { url: proxy.url } },
    });
    await proxy.pause();
    const study = makeStudy({ series: 1, instancesPerSeries: 4, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => /the proxy http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\)/.test(status().lastError ?? ''), describeState);
    assert.equal(status().counts.delivered, 0);
    assert.equal(status().counts.failed, 0, 'nothing given up');
    assert.equal(status().counts.pending + status().counts.sending, study.length, 'every instance still queued');

    const tested = await fwd.service.testConnection('orthanc');
    assert.equal(tested.ok, false);
    assert.match(tested.message, /the proxy http:\/\/127\.0\.0\.1:\d+ cannot be reached/);

    await proxy.resume();
    await waitFor(() => status().counts.delivered === study.length, describeState);
    await assertStoredIdentical(orthanc, study);
  });

  it('a proxy that asks for a password (407) is named; with user and password in settings the queue is delivered', async () => {
    await mkdir(join(dir, 'proxy-auth'), { recursive: true });
    const guarded = await Tinyproxy.start({ dir: join(dir, 'proxy-auth'), basicAuth: { user: 'edge', password: 'proxy-secret' } });
    try {
      fwd = await startForwarding({
        destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, ...quickRetry }],
        network: { proxy: { url: guarded.url } },
      });
      const study = makeStudy({ series: 1, instancesPerSeries: 3, ...small });
      await fwd.ingest(study.map((i) => i.buffer));
      await waitFor(() => /the proxy http:\/\/127\.0\.0\.1:\d+ asks for authentication \(HTTP 407\)/.test(status().lastError ?? ''), describeState);
      assert.equal(status().counts.pending + status().counts.sending, study.length, 'nothing lost');

      await fwd.reconfigure({ network: { proxy: { url: guarded.url, user: 'edge', password: 'proxy-secret' } } });
      await waitFor(() => status().counts.delivered === study.length, describeState);
      assert.ok((await guarded.tunnels()).includes(orthancTunnel()));
    } finally {
      await guarded.stop();
    }
  });

  it('a proxy that refuses the tunnel (403) is named, and nothing is lost', async () => {
    await mkdir(join(dir, 'proxy-refusing'), { recursive: true });
    const refusing = await Tinyproxy.start({ dir: join(dir, 'proxy-refusing'), refuseTunnels: true });
    try {
      fwd = await startForwarding({
        destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, ...quickRetry }],
        network: { proxy: { url: refusing.url } },
      });
      const study = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
      await fwd.ingest(study.map((i) => i.buffer));
      await waitFor(() => /the proxy http:\/\/127\.0\.0\.1:\d+ refused the connection to 127\.0\.0\.1:\d+ \(HTTP 403\)/.test(status().lastError ?? ''), describeState);
      assert.equal(status().counts.pending + status().counts.sending, study.length, 'nothing lost');
      assert.equal(status().counts.failed, 0);
    } finally {
      await refusing.stop();
    }
  });

  it('archive reads go through the proxy; a refusing proxy is named, not taken for the archive refusing us', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 1, ...small });
    for (const instance of study) await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(instance.buffer) });
    const egress = Egress.fromSettings(settingsSchema.parse({ network: { proxy: { url: proxy.url } } }).network);
    const reader = new ArchiveReader({ baseUrl: orthanc.dicomWebUrl, auth: { authorization: async () => undefined }, name: 'orthanc', egress });
    const before = (await proxy.tunnels()).length;
    try {
      const found = await reader.search({ level: 'study', match: { StudyInstanceUID: study[0]!.studyUid } });
      assert.equal(found.length, 1);
      assert.ok((await proxy.tunnels()).slice(before).includes(orthancTunnel()), 'the QIDO went through the proxy');
    } finally {
      await reader.close();
    }

    await mkdir(join(dir, 'proxy-refusing-reads'), { recursive: true });
    const refusing = await Tinyproxy.start({ dir: join(dir, 'proxy-refusing-reads'), refuseTunnels: true });
    const refused = new ArchiveReader({
      baseUrl: orthanc.dicomWebUrl, auth: { authorization: async () => undefined },
      egress: Egress.fromSettings(settingsSchema.parse({ network: { proxy: { url: refusing.url } } }).network),
    });
    try {
      await assert.rejects(refused.search({ level: 'study' }), (error: unknown) => {
        assert.ok(error instanceof ArchiveReadError);
        assert.equal(error.kind, 'offline', 'retried later, no user action on the archive');
        assert.match(error.message, /the proxy http:\/\/127\.0\.0\.1:\d+ refused the connection to 127\.0\.0\.1:\d+ \(HTTP 403\)/);
        return true;
      });
    } finally {
      await refused.close();
      await refusing.stop();
    }
  });
});

describe('an upstream with a certificate from a private CA (Orthanc behind stunnel4)', () => {
  let dir = '';
  let orthanc: OrthancPeer;
  let ca: TestCa;
  let tls: Stunnel;
  let fwd: Forwarding | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'net-ca-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    ca = await makeTestCa(join(dir, 'ca'));
    const server = await ca.issue('orthanc');
    tls = await startStunnel({ dir, name: 'orthanc', connectPort: orthanc.httpPort, ...server });
  });
  afterEach(async () => {
    await fwd?.close();
    fwd = undefined;
  });
  after(async () => {
    await tls?.stop();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const status = () => fwd!.service.status()[0]!;
  const describeState = () => JSON.stringify(status());

  it('without caFile the certificate error says what to do and nothing is lost; with it the study arrives byte-identical', async () => {
    const destination = { name: 'orthanc-tls', baseUrl: `https://127.0.0.1:${tls.port}/dicom-web`, ...quickRetry };
    fwd = await startForwarding({ destinations: [destination] });
    const study = makeStudy({ series: 1, instancesPerSeries: 4, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => (status().lastError ?? '').includes("the upstream's certificate is signed by a CA this box does not trust: add it in Settings → Network"), describeState);
    assert.equal(status().counts.delivered, 0);
    assert.equal(status().counts.failed, 0, 'nothing given up');
    assert.equal(status().counts.pending + status().counts.sending, study.length, 'every instance still queued');
    const tested = await fwd.service.testConnection('orthanc-tls');
    assert.match(tested.message, /signed by a CA this box does not trust: add it in Settings → Network/);

    await fwd.reconfigure({ network: { caFile: ca.caFile } });
    await waitFor(() => status().counts.delivered === study.length, describeState);
    await assertStoredIdentical(orthanc, study);
    assert.equal((await fwd.service.testConnection('orthanc-tls')).ok, true);
  });
});

describe('Entra sign-in and forwarding through the proxy, Entra behind a private CA', () => {
  let dir = '';
  let entra: EntraDouble;
  let azure: AzureDicomDouble;
  let ca: TestCa;
  let entraTls: Stunnel;
  let proxy: Tinyproxy;
  let fwd: Forwarding | undefined;
  const clientId = 'edge-appliance';
  const clientSecret = 'double-secret-value';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'net-entra-'));
    entra = await EntraDouble.start({ tokenLifetimeSeconds: 600 });
    entra.registerConfidentialClient({ clientId, secret: clientSecret });
    azure = await AzureDicomDouble.start({ auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId } });
    ca = await makeTestCa(join(dir, 'ca'));
    entraTls = await startStunnel({ dir, name: 'entra', connectPort: entra.port, ...(await ca.issue('entra')) });
    await mkdir(join(dir, 'proxy'));
    proxy = await Tinyproxy.start({ dir: join(dir, 'proxy') });
  });
  after(async () => {
    await fwd?.close();
    await proxy?.stop();
    await entraTls?.stop();
    await azure?.stop();
    await entra?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('token requests and STOW both go through the proxy, and Entra\'s certificate is trusted through caFile', async () => {
    // msal is told about Entra at its TLS address and reaches it with the appliance's own network client.
    const tlsOrigin = `127.0.0.1:${entraTls.port}`;
    const moved = (text: string) => text.replaceAll(`127.0.0.1:${entra.port}`, tlsOrigin);
    const msal = () => ({ auth: { knownAuthorities: [tlsOrigin], authorityMetadata: moved(entra.authorityMetadata()), cloudDiscoveryMetadata: moved(entra.cloudDiscoveryMetadata()) } });
    fwd = await startForwarding({
      destinations: [{ name: 'azure', baseUrl: azure.baseUrl, ...quickRetry,
        auth: { kind: 'entra-client-secret', tenantId: entra.tenantId, clientId, clientSecret, authority: `https://${tlsOrigin}/${entra.tenantId}` } }],
      network: { proxy: { url: proxy.url }, caFile: ca.caFile },
      msal,
    });
    const study = makeStudy({ series: 1, instancesPerSeries: 3, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => fwd!.service.status()[0]!.counts.delivered === study.length, () => JSON.stringify(fwd!.service.status()[0]));
    assert.ok(entra.tokenRequestCount('client_credentials') >= 1, 'a token was issued');
    const tunnels = await proxy.tunnels();
    assert.ok(tunnels.includes(tlsOrigin), `the token request went through the proxy: ${JSON.stringify(tunnels)}`);
    assert.ok(tunnels.includes(new URL(azure.baseUrl).host), `the STOW went through the proxy: ${JSON.stringify(tunnels)}`);
    assert.ok(study.every((i) => azure.storeCount(i.sopInstanceUid) === 1));
    assert.doesNotMatch(await readFile(proxy.logFile, 'utf8'), new RegExp(clientSecret), 'the secret is inside TLS, never in the proxy log');
    await fwd.close();

    // A new box (no cached token) with the proxy down: the sign-in error names the proxy; nothing is lost.
    await proxy.pause();
    try {
      fwd = await startForwarding({
        destinations: [{ name: 'azure', baseUrl: azure.baseUrl, ...quickRetry,
          auth: { kind: 'entra-client-secret', tenantId: entra.tenantId, clientId, clientSecret, authority: `https://${tlsOrigin}/${entra.tenantId}` } }],
        network: { proxy: { url: proxy.url }, caFile: ca.caFile },
        msal,
      });
      const waiting = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
      await fwd.ingest(waiting.map((i) => i.buffer));
      const status = () => fwd!.service.status()[0]!;
      await waitFor(() => /token.*the proxy http:\/\/127\.0\.0\.1:\d+ cannot be reached \(ECONNREFUSED\)/.test(status().lastError ?? ''), () => JSON.stringify(status()));
      assert.equal(status().counts.pending + status().counts.sending, waiting.length, 'nothing lost');
      await proxy.resume();
      await waitFor(() => status().counts.delivered === waiting.length, () => JSON.stringify(status()));
    } finally {
      await proxy.resume();
    }
  });
});
