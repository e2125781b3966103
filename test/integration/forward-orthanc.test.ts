// A real upstream: Orthanc's DICOMweb. Every instance must arrive with identical bytes, exactly once.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startForwarding, waitFor, type Forwarding } from '../support/forward-harness.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeStudy } from '../support/study.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('forward to Orthanc (real DICOMweb upstream)', () => {
  let dir = '';
  let orthanc: OrthancPeer;
  let fwd: Forwarding;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fwd-orthanc-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    fwd = await startForwarding({
      destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, maxInstancesPerRequest: 7, maxConcurrentRequests: 3, verifyAfterDelivery: true }],
    });
  });
  after(async () => {
    await fwd?.close();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers two studies with identical bytes, verified by QIDO', async () => {
    const studies = [makeStudy({ series: 2, instancesPerSeries: 10, rows: 16, columns: 16 }), makeStudy({ series: 1, instancesPerSeries: 5, rows: 16, columns: 16, modality: 'MR' })];
    const all = studies.flat();
    await fwd.ingest(all.map((i) => i.buffer));
    await waitFor(() => fwd.service.status()[0]!.counts.delivered === all.length, () => JSON.stringify(fwd.service.status()));
    const status = fwd.service.status()[0]!;
    assert.equal(status.state, 'online');
    assert.equal(status.counts.pending + status.counts.sending + status.counts.failed, 0);
    const stats = await (await fetch(`${orthanc.httpUrl}/statistics`)).json() as { CountInstances: number };
    assert.equal(stats.CountInstances, all.length, 'exactly the instances sent');
    for (const instance of all) {
      const lookup = await (await fetch(`${orthanc.httpUrl}/tools/lookup`, { method: 'POST', body: instance.sopInstanceUid })).json() as Array<{ ID: string; Type: string }>;
      const id = lookup.find((l) => l.Type === 'Instance')!.ID;
      const bytes = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${id}/file`)).arrayBuffer());
      assert.equal(sha(bytes), sha(instance.buffer), `identical bytes for ${instance.sopInstanceUid}`);
    }
    const progress = fwd.service.progress({ destination: 'orthanc' });
    assert.equal(progress.length, 2);
    assert.ok(progress.every((p) => p.counts.delivered > 0 && p.deliveredBytes === p.totalBytes));
  });

  it('testConnection answers from a QIDO search', async () => {
    const result = await fwd.service.testConnection('orthanc');
    assert.deepEqual([result.ok, result.step, result.status], [true, 'qido', 200]);
  });
});
