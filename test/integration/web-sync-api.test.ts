// What the study list and study view read from /api: local sizes, storage use, and every instance's
// delivery state per destination. Instances arrive from DCMTK storescu, as from a modality.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { requireTool, runOk } from '../support/peers.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/study.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { indexDb } from '../support/index-db.js';

describe('/api sizes and per-instance sync state', { timeout: 60_000 }, () => {
  let w: WebAppliance;
  let dir: string;
  let first: GeneratedInstance[];
  let second: GeneratedInstance[];

  const get = async (path: string) => {
    const response = await w.api(path);
    return { status: response.status, body: (await response.json()) as any };
  };
  const send = async (instances: GeneratedInstance[]) => {
    const files = await writeInstances(await mkdtemp(join(dir, 'send-')), instances);
    await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(w.dimsePort), ...files], { timeoutMs: 60_000 });
  };
  const sizeOfStudy = (studyUid: string) =>
    (indexDb(w.appliance.archive).prepare('SELECT COALESCE(SUM(size_bytes),0) AS n FROM instances WHERE study_uid = ?').get(studyUid) as { n: number }).n;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sync-api-'));
    w = await startWebAppliance();
    first = makeStudy({ series: 1, instancesPerSeries: 3, patientName: 'SIZE^ONE' });
    second = makeStudy({ series: 2, instancesPerSeries: 2, patientName: 'SIZE^TWO' });
  });
  after(async () => {
    await w?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('/api/info storage.usedBytes follows what is stored and deleted; /api/sync carries each study\'s local size', async () => {
    assert.equal((await get('/api/info')).body.storage.usedBytes, 0);
    await send(first);
    await send(second);
    const a = sizeOfStudy(first[0]!.studyUid);
    const b = sizeOfStudy(second[0]!.studyUid);
    assert.ok(a > first.reduce((n, i) => n + i.buffer.length, 0) * 0.9, `study size ${a}`);
    assert.equal((await get('/api/info')).body.storage.usedBytes, a + b);

    const sync = await get(`/api/sync?study=${first[0]!.studyUid},${second[0]!.studyUid}`);
    assert.deepEqual(sync.body.map((s: any) => s.sizeBytes), [a, b]);
    const latest = await get('/api/sync');
    assert.equal(latest.body.find((s: any) => s.studyUid === first[0]!.studyUid).sizeBytes, a);

    // Deleting a study frees its bytes (no destination configured: its instances wait, so force is needed).
    assert.equal((await w.api(`/dicom-web/studies/${second[0]!.studyUid}?force=true`, { method: 'DELETE' })).status, 204);
    assert.equal((await get('/api/info')).body.storage.usedBytes, a);
  });

  test('/api/studies/:uid/sync lists every instance with its state per destination, failed first, paged', async () => {
    const studyUid = first[0]!.studyUid;
    const all = await get(`/api/studies/${studyUid}/sync`);
    assert.equal(all.status, 200);
    assert.equal(all.body.instances.total, 3);
    assert.deepEqual(all.body.instances.items.map((i: any) => i.sopInstanceUid).sort(), first.map((i) => i.sopInstanceUid).sort());
    // Received while no destination existed: queued for '*', pending.
    for (const item of all.body.instances.items) {
      assert.deepEqual(item.destinations.map((d: any) => [d.destination, d.state]), [['*', 'pending']]);
      assert.equal(item.seriesUid, first[0]!.seriesUid);
    }
    assert.deepEqual(all.body.instances.items.map((i: any) => i.instanceNumber), [1, 2, 3]);

    // Two destinations, one instance failed at one of them (as the forwarder records it).
    const db = indexDb(w.appliance.archive);
    const [one, two, three] = first.map((i) => i.sopInstanceUid) as [string, string, string];
    db.prepare("UPDATE outbox SET destination = 'cloud-a', state = 'delivered' WHERE study_uid = ?").run(studyUid);
    db.prepare(`INSERT INTO outbox (sop_instance_uid, study_uid, destination, state, attempts, last_error, failure_reason, size_bytes, created_at, updated_at)
                SELECT sop_instance_uid, study_uid, 'cloud-b', CASE WHEN sop_instance_uid = ? THEN 'failed' ELSE 'pending' END,
                       CASE WHEN sop_instance_uid = ? THEN 3 ELSE 0 END, CASE WHEN sop_instance_uid = ? THEN 'HTTP 400: invalid attribute' END,
                       CASE WHEN sop_instance_uid = ? THEN 43264 END, size_bytes, created_at, updated_at FROM outbox WHERE study_uid = ?`)
      .run(three, three, three, three, studyUid);

    const page1 = await get(`/api/studies/${studyUid}/sync?limit=2&offset=0`);
    assert.equal(page1.body.instances.total, 3);
    assert.equal(page1.body.instances.items.length, 2);
    assert.equal(page1.body.instances.items[0].sopInstanceUid, three, 'the failed instance comes first');
    assert.deepEqual(page1.body.instances.items[0].destinations.map((d: any) => [d.destination, d.state, d.attempts, d.lastError, d.failureReason]),
      [['cloud-a', 'delivered', 0, null, null], ['cloud-b', 'failed', 3, 'HTTP 400: invalid attribute', 43264]]);
    const page2 = await get(`/api/studies/${studyUid}/sync?limit=2&offset=2`);
    assert.equal(page2.body.instances.items.length, 1);
    const order = [...page1.body.instances.items, ...page2.body.instances.items].map((i: any) => i.sopInstanceUid);
    assert.deepEqual(order, [three, one, two]);
    for (const item of [...page1.body.instances.items, ...page2.body.instances.items].slice(1)) {
      assert.deepEqual(item.destinations.map((d: any) => [d.destination, d.state]), [['cloud-a', 'delivered'], ['cloud-b', 'pending']]);
    }
    assert.equal(page1.body.problems.length, 1);
    assert.equal(page1.body.state, 'failed');

    assert.equal((await get(`/api/studies/${studyUid}/sync?limit=0`)).status, 400);
    assert.equal((await get(`/api/studies/${studyUid}/sync?offset=-1`)).status, 400);
    assert.equal((await get('/api/studies/1.2.3.4/sync')).status, 404);
    assert.equal((await get('/api/studies/not-a-uid/sync')).status, 400);
  });

  test('a study\'s problems, the failures and one failure speak camelCase, as every /api answer does', async () => {
    const studyUid = first[0]!.studyUid;
    const failed = first[2]!.sopInstanceUid; // failed at cloud-b in the test before
    const study = await get(`/api/studies/${studyUid}/sync`);
    const [problem] = study.body.problems;
    assert.deepEqual(Object.keys(problem), ['id', 'sopInstanceUid', 'destination', 'state', 'attempts', 'lastError', 'failureReason', 'updatedAt']);
    assert.deepEqual([problem.sopInstanceUid, problem.destination, problem.state, problem.attempts, problem.lastError, problem.failureReason],
      [failed, 'cloud-b', 'failed', 3, 'HTTP 400: invalid attribute', 43264]);

    const failures = await get('/api/failures');
    assert.equal(failures.body.total, 1);
    const [item] = failures.body.items;
    assert.deepEqual(Object.keys(item), ['id', 'sopInstanceUid', 'studyUid', 'destination', 'state', 'attempts', 'lastError', 'failureReason',
      'updatedAt', 'patientName', 'patientId', 'studyDate', 'studyDescription']);
    assert.deepEqual([item.id, item.sopInstanceUid, item.studyUid, item.destination, item.lastError, item.updatedAt, item.patientName],
      [problem.id, failed, studyUid, 'cloud-b', 'HTTP 400: invalid attribute', problem.updatedAt, 'SIZE^ONE']);
    assert.equal((await get('/api/failures?destination=cloud-a')).body.total, 0);

    const detail = await get(`/api/failures/${problem.id}`);
    assert.deepEqual([detail.body.entry.sopInstanceUid, detail.body.entry.studyUid, detail.body.entry.failureReason, detail.body.entry.replacesEarlier],
      [failed, studyUid, 43264, 0]);
    assert.deepEqual([detail.body.instance.sopInstanceUid, detail.body.instance.seriesUid, detail.body.instance.callingAe],
      [failed, first[2]!.seriesUid, 'MODALITY']);
    assert.deepEqual([detail.body.study.studyUid, detail.body.study.patientName, detail.body.study.numInstances], [studyUid, 'SIZE^ONE', 3]);

    const outbox = await get('/api/outbox');
    const cloudB = outbox.body.destinations.find((d: any) => d.name === 'cloud-b');
    assert.deepEqual([cloudB.counts.failed.count, cloudB.counts.pending.count, cloudB.lastError, cloudB.lastErrorAt],
      [1, 2, 'HTTP 400: invalid attribute', problem.updatedAt]);
    assert.equal(outbox.body.totals.delivered.count, 3);

    for (const path of [`/api/studies/${studyUid}/sync`, '/api/failures', `/api/failures/${problem.id}`, '/api/outbox', '/api/sync', '/api/info']) {
      assert.deepEqual(snakeCaseKeys((await get(path)).body), [], path);
    }
  });
});

/** Every key in a JSON value that is not camelCase (has an underscore). */
function snakeCaseKeys(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(snakeCaseKeys);
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, inner]) => [...(key.includes('_') ? [key] : []), ...snakeCaseKeys(inner)]);
}
