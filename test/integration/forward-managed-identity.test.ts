// Auth kind managed-identity on an Azure VM: the token comes from the IMDS endpoint (a double of the documented
// one, found through $AZURE_POD_IDENTITY_AUTHORITY_HOST as msal allows), never from a stored secret.
// msal picks the managed identity source once per process, so Azure Arc has its own file.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { ManagedIdentityDouble } from '../doubles/azure-managed-identity.js';
import { DICOM_RESOURCE, EntraDouble } from '../doubles/entra.js';
import { startForwarding, waitFor, type Forwarding } from '../support/forward-harness.js';
import { makeStudy } from '../support/study.js';

const small = { rows: 8, columns: 8 } as const;
const USER_ASSIGNED = '5c7b1f8e-0000-4000-8000-00000000abcd';

describe('forward with a managed identity (IMDS)', () => {
  let entra: EntraDouble;
  let imds: ManagedIdentityDouble;
  let azure: AzureDicomDouble;
  let fwd: Forwarding | undefined;

  before(async () => {
    entra = await EntraDouble.start();
    imds = await ManagedIdentityDouble.start({ kind: 'imds', entra, userAssignedClientIds: [USER_ASSIGNED] });
    for (const name of ['IDENTITY_ENDPOINT', 'IMDS_ENDPOINT', 'IDENTITY_HEADER', 'IDENTITY_SERVER_THUMBPRINT', 'MSI_ENDPOINT', 'MSI_SECRET']) delete process.env[name];
    process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST = imds.origin;
    azure = await AzureDicomDouble.start({ auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId } });
  });
  afterEach(async () => {
    await fwd?.close();
    fwd = undefined;
    azure.reset();
  });
  after(async () => {
    delete process.env.AZURE_POD_IDENTITY_AUTHORITY_HOST;
    await azure.stop();
    await imds.stop();
    await entra.stop();
  });

  const status = () => fwd!.service.status()[0]!;
  const describeState = () => `status ${JSON.stringify(status())}; upstream holds ${azure.storedInstances().length}; IMDS saw ${JSON.stringify(imds.requests)}`;

  it('system-assigned: a token for the DICOM resource from IMDS, every instance delivered once', async () => {
    fwd = await startForwarding({ destinations: [{ name: 'azure', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400, auth: { kind: 'managed-identity' } }] });
    const study = makeStudy({ series: 1, instancesPerSeries: 4, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === study.length, describeState, 30_000);
    assert.ok(study.every((i) => azure.storeCount(i.sopInstanceUid) === 1), 'each stored once');
    assert.ok(azure.storeRequests().every((r) => r.auth === 'ok'), 'every request carried a token the upstream accepts');
    const asked = imds.requests.filter((r) => r.status === 200);
    assert.ok(asked.length >= 1);
    for (const request of asked) {
      assert.equal(request.resource, DICOM_RESOURCE, 'the resource, not the scope');
      assert.equal(request.apiVersion, '2018-02-01');
      assert.equal(request.metadataHeader, true);
      assert.equal(request.clientId, null, 'no client_id for the system-assigned identity');
    }
  });

  it('user-assigned: the client id goes with the request; an identity the box does not have is a clear error', async () => {
    fwd = await startForwarding({ destinations: [{ name: 'azure', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400, auth: { kind: 'managed-identity', clientId: USER_ASSIGNED } }] });
    const study = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
    await fwd.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === study.length, describeState, 30_000);
    assert.ok(imds.requests.some((r) => r.status === 200 && r.clientId === USER_ASSIGNED));
    await fwd.close();

    const stranger = '00000000-dead-4000-8000-000000000000';
    fwd = await startForwarding({ destinations: [{ name: 'azure', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400, auth: { kind: 'managed-identity', clientId: stranger } }] });
    const other = makeStudy({ series: 1, instancesPerSeries: 1, ...small });
    await fwd.ingest(other.map((i) => i.buffer));
    await waitFor(() => /managed identity/.test(status().lastError ?? ''), describeState, 30_000);
    assert.match(status().lastError!, new RegExp(`user-assigned managed identity ${stranger}`));
    assert.equal(status().counts.delivered, 0, 'nothing sent without a token');
    assert.equal(azure.storeCount(other[0]!.sopInstanceUid), 0);
  });
});
