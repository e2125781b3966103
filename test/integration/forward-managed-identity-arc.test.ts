// Auth kind managed-identity on a server enrolled in Azure Arc: the token comes from the Arc agent's endpoint (a
// double of the documented one, at $IDENTITY_ENDPOINT with $IMDS_ENDPOINT set, as the agent sets them), after its
// challenge: the secret is read from the file the 401 names, which must lie in the agent's token folder. Writing
// that file needs root, as reading it does on a real box.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { ManagedIdentityDouble } from '../doubles/azure-managed-identity.js';
import { DICOM_RESOURCE, EntraDouble } from '../doubles/entra.js';
import { startForwarding, waitFor, type Forwarding } from '../support/forward-harness.js';
import { makeStudy } from '../support/study.js';

// Where msal accepts the Arc agent's secret files on Linux.
const ARC_TOKENS = '/var/opt/azcmagent/tokens';

describe('forward with a managed identity (Azure Arc)', () => {
  let entra: EntraDouble;
  let arc: ManagedIdentityDouble;
  let azure: AzureDicomDouble;
  let fwd: Forwarding | undefined;
  const madeFolders: string[] = [];
  const secretFile = join(ARC_TOKENS, `dicom-edge-test-${randomBytes(6).toString('hex')}.key`);

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'this test writes the Arc agent\'s secret file under /var/opt/azcmagent and must run as root (as CI does)');
    for (const folder of ['/var/opt/azcmagent', ARC_TOKENS]) {
      if (!existsSync(folder)) {
        await mkdir(folder, { mode: 0o700 });
        madeFolders.unshift(folder);
      }
    }
    const content = randomBytes(32).toString('hex');
    await writeFile(secretFile, content, { mode: 0o600 });
    entra = await EntraDouble.start();
    arc = await ManagedIdentityDouble.start({ kind: 'arc', entra, arcSecret: { file: secretFile, content } });
    for (const name of ['AZURE_POD_IDENTITY_AUTHORITY_HOST', 'IDENTITY_HEADER', 'IDENTITY_SERVER_THUMBPRINT', 'MSI_ENDPOINT', 'MSI_SECRET']) delete process.env[name];
    process.env.IDENTITY_ENDPOINT = arc.tokenUrl;
    process.env.IMDS_ENDPOINT = arc.origin;
    azure = await AzureDicomDouble.start({ auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId } });
  });
  after(async () => {
    await fwd?.close();
    delete process.env.IDENTITY_ENDPOINT;
    delete process.env.IMDS_ENDPOINT;
    await azure?.stop();
    await arc?.stop();
    await entra?.stop();
    await rm(secretFile, { force: true });
    for (const folder of madeFolders) await rmdir(folder);
  });

  it('answers the challenge with the secret file and delivers every instance once', async () => {
    fwd = await startForwarding({ destinations: [{ name: 'azure', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400, auth: { kind: 'managed-identity' } }] });
    const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 8, columns: 8 });
    await fwd.ingest(study.map((i) => i.buffer));
    const status = () => fwd!.service.status()[0]!;
    await waitFor(() => status().counts.delivered === study.length, () => `status ${JSON.stringify(status())}; Arc saw ${JSON.stringify(arc.requests)}`, 30_000);
    assert.ok(study.every((i) => azure.storeCount(i.sopInstanceUid) === 1), 'each stored once');
    assert.ok(azure.storeRequests().every((r) => r.auth === 'ok'));
    const [challenged, answered] = arc.requests;
    assert.equal(challenged?.status, 401, 'the first request is challenged');
    assert.equal(challenged?.secret, 'none');
    assert.equal(answered?.status, 200);
    assert.equal(answered?.secret, 'ok', 'the second carries the file\'s secret');
    assert.equal(answered?.resource, DICOM_RESOURCE);
    assert.equal(answered?.apiVersion, '2020-06-01');
  });
});
