// Entra ID sign-in for forwarding: client credentials (secret), tokens expiring mid-run, a token the
// upstream keeps rejecting (401 → refresh once → 'auth'), and device-code sign-in with an encrypted cache.
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { EntraDouble } from '../doubles/entra.js';
import { startForwarding, waitFor, type Forwarding } from '../support/forward-harness.js';
import { makeStudy } from '../support/study.js';

const small = { rows: 8, columns: 8 } as const;

describe('forward with Entra ID sign-in', () => {
  let entra: EntraDouble;
  let azure: AzureDicomDouble;
  let fwd: Forwarding | undefined;
  const clientId = 'edge-appliance';
  const clientSecret = 'double-secret-value';

  before(async () => {
    entra = await EntraDouble.start({ tokenLifetimeSeconds: 2 });
    entra.registerConfidentialClient({ clientId, secret: clientSecret });
    entra.registerPublicClient('edge-technician');
    azure = await AzureDicomDouble.start({ auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId } });
  });
  afterEach(async () => {
    await fwd?.close();
    fwd = undefined;
    await azure.clearFault();
    azure.setAuth({ jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId });
    azure.reset();
  });
  after(async () => {
    await azure.stop();
    await entra.stop();
  });

  const msal = () => ({ auth: { knownAuthorities: entra.msalAuth(clientId).knownAuthorities, authorityMetadata: entra.authorityMetadata(), cloudDiscoveryMetadata: entra.cloudDiscoveryMetadata() }, system: entra.msalSystem() });
  const status = () => fwd!.service.status()[0]!;
  const describeState = () => `status ${JSON.stringify(status())}; upstream holds ${azure.storedInstances().length}; tokens ${JSON.stringify(entra.tokenRequestCounts())}`;

  it('client credentials: tokens that expire mid-run are renewed, every instance delivered once', async () => {
    await azure.setFault({ kind: 'delay', ms: 150 });
    fwd = await startForwarding({
      destinations: [{ name: 'azure', baseUrl: azure.baseUrl, maxInstancesPerRequest: 2, maxConcurrentRequests: 1, retryBaseMs: 50, retryCapMs: 400,
        auth: { kind: 'entra-client-secret', tenantId: entra.tenantId, clientId, clientSecret, authority: entra.authority } }],
      msal,
    });
    const study = makeStudy({ series: 1, instancesPerSeries: 30, ...small });
    const tokensBefore = entra.tokenRequestCount('client_credentials');
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === study.length, describeState, 30_000);
    assert.ok(study.every((i) => azure.storeCount(i.sopInstanceUid) === 1), 'each stored once');
    assert.ok(entra.tokenRequestCount('client_credentials') - tokensBefore >= 2, 'a new token after the first expired');
    assert.ok(azure.storeRequests().every((r) => r.auth === 'ok' || r.auth === 'invalid'), 'every request carried a token');
    assert.notEqual(status().state, 'auth');
  });

  it('a token the upstream rejects: refreshed once, then paused with state auth; resumed after the fix', async () => {
    fwd = await startForwarding({
      destinations: [{ name: 'azure', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400,
        auth: { kind: 'entra-client-secret', tenantId: entra.tenantId, clientId, clientSecret, authority: entra.authority } }],
      msal,
    });
    azure.setAuth({ jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId, audience: 'https://some-other-resource' });
    const study = makeStudy({ series: 1, instancesPerSeries: 3, ...small });
    fwd.service.pause('azure'); // so the three go in one request
    await fwd.ingest(study.map((i) => i.buffer));
    fwd.service.resume('azure');
    await waitFor(() => status().state === 'auth', describeState);
    assert.match(status().lastError ?? '', /401/);
    const rejected = azure.storeRequests().filter((r) => r.auth !== 'ok').length;
    assert.equal(rejected, 2, 'the first try and one retry with a fresh token');
    azure.setAuth({ jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId });
    fwd.service.resume('azure');
    await waitFor(() => status().counts.delivered === 3, describeState);
  });

  it('device code: waits for sign-in, then sends; the token cache is stored encrypted, 0600', async () => {
    fwd = await startForwarding({
      destinations: [{ name: 'azure', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400,
        auth: { kind: 'entra-device-code', tenantId: entra.tenantId, clientId: 'edge-technician', authority: entra.authority } }],
      msal: () => ({ auth: { knownAuthorities: entra.msalAuth('edge-technician').knownAuthorities, authorityMetadata: entra.authorityMetadata(), cloudDiscoveryMetadata: entra.cloudDiscoveryMetadata() }, system: entra.msalSystem() }),
    });
    const study = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().state === 'auth', describeState);
    assert.match(status().lastError ?? '', /device code/);
    const waiting = await fwd.service.startDeviceCodeSignIn('azure');
    assert.equal(waiting.state, 'waiting');
    const grant = await entra.waitForDeviceCode();
    assert.equal(grant.userCode, (waiting as { userCode: string }).userCode);
    entra.approveDeviceCode(grant.userCode, { upn: 'tech@clinic.test' });
    await waitFor(() => fwd!.service.deviceCodeStatus('azure').state === 'signed-in', describeState, 15_000);
    await waitFor(() => status().counts.delivered === 2, describeState);
    const dir = join(fwd.dataDir, 'forward', 'tokens');
    const files = await readdir(dir);
    assert.deepEqual(files, ['azure.cache']);
    assert.equal((await stat(join(dir, files[0]!))).mode & 0o777, 0o600);
    const text = await readFile(join(dir, files[0]!), 'utf8');
    assert.match(text, /^enc:v1:/);
    assert.ok(!text.includes('tech@clinic.test') && !text.includes('eyJ'), 'no account or token in clear');
  });
});
