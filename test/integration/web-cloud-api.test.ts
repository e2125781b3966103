// The cloud routes of /api over HTTP: pin a study as "keep local" and read the prefetch jobs, with the
// contract's schemas checking requests (precise 400s) and answers.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { prefetchListSchema, studyPinSchema } from '../../main/core/contract/cloud.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

describe('cloud routes of /api', () => {
  let w: WebAppliance;
  before(async () => {
    w = await startWebAppliance();
  });
  after(async () => {
    await w?.stop();
  });

  const pinned = (uid: string) => (indexDb(w.appliance.archive).prepare('SELECT pinned FROM studies WHERE study_uid = ?').get(uid) as { pinned: number }).pinned;

  test('POST and DELETE /api/studies/:study/pin keep a study local, or let it go again', async () => {
    const stored = await w.appliance.archive.ingest(Readable.from([makeInstance({ rows: 8, columns: 8 })]), { callingAe: 'CT', peer: 'test' });
    const studyUid = stored.header.studyInstanceUid;
    const on = await w.api(`/api/studies/${studyUid}/pin`, { method: 'POST' });
    assert.equal(on.status, 200);
    assert.deepEqual(studyPinSchema.parse(await on.json()), { studyUid, pinned: true, location: 'local' });
    assert.equal(pinned(studyUid), 1);
    const off = await w.api(`/api/studies/${studyUid}/pin`, { method: 'DELETE' });
    assert.equal(off.status, 200);
    assert.deepEqual(await off.json(), { studyUid, pinned: false, location: 'local' });
    assert.equal(pinned(studyUid), 0);
  });

  test('a cloud-only study can be pinned too (kept once it is fetched)', async () => {
    const studyUid = newUid();
    w.appliance.archive.cloud.upsert('study', [{ '0020000D': { vr: 'UI', Value: [studyUid] } }]);
    const res = await w.api(`/api/studies/${studyUid}/pin`, { method: 'POST' });
    assert.deepEqual(await res.json(), { studyUid, pinned: true, location: 'cloud' });
  });

  test('an unknown study is 404, a malformed UID 400 with the reason, and nothing changes', async () => {
    const unknown = newUid();
    const missing = await w.api(`/api/studies/${unknown}/pin`, { method: 'POST' });
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { status: 404, error: `no study ${unknown} in the index` });
    const bad = await w.api('/api/studies/1.2.abc/pin', { method: 'POST' });
    assert.equal(bad.status, 400);
    const body = (await bad.json()) as { status: number; error: string };
    assert.equal(body.status, 400);
    assert.match(body.error, /StudyInstanceUID "1\.2\.abc" in the path contains characters other than digits and dots/);
  });

  test('the routes need the session token', async () => {
    const res = await fetch(`${w.baseUrl}/api/prefetch`);
    assert.equal(res.status, 401);
  });

  test('GET /api/prefetch lists the jobs with their study and the counts per state; bad parameters are 400', async () => {
    const { archive } = w.appliance;
    const done = newUid();
    const queued = newUid();
    archive.cloud.upsert('study', [{
      '0020000D': { vr: 'UI', Value: [done] }, '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Prior^Patient' }] },
      '00080020': { vr: 'DA', Value: ['20240110'] }, '00080061': { vr: 'CS', Value: ['CT'] }, '00201208': { vr: 'IS', Value: [4] },
    }]);
    archive.prefetch.enqueue([done, queued].map((studyUid) => ({ studyUid, patientId: 'P-1', issuerOfPatientId: '', triggerStudyUid: '2.25.9' })));
    const job = archive.prefetch.claimNext()!;
    assert.equal(job.studyUid, done);
    archive.prefetch.done(job.id, 4);
    const res = await w.api('/api/prefetch');
    assert.equal(res.status, 200);
    const list = prefetchListSchema.parse(await res.json());
    assert.deepEqual(list.counts, { queued: 1, fetching: 0, done: 1, failed: 0 });
    assert.deepEqual(list.jobs.map((j) => [j.studyUid, j.state]), [[queued, 'queued'], [done, 'done']]);
    const shown = list.jobs[1]!;
    assert.deepEqual([shown.patientName, shown.studyDate, shown.modalities, shown.numInstances, shown.instancesFetched, shown.triggerStudyUid],
      ['Prior^Patient', '20240110', ['CT'], 4, 4, '2.25.9']);
    const onlyDone = prefetchListSchema.parse(await (await w.api('/api/prefetch?state=done&limit=1')).json());
    assert.deepEqual(onlyDone.jobs.map((j) => j.studyUid), [done]);
    const problems: Record<string, RegExp> = {
      'state=waiting': /state must be one of queued, fetching, done, failed/,
      'limit=0': /limit must be an integer from 1 to 500/,
      'limit=abc': /limit must be an integer from 1 to 500/,
      'offset=-1': /offset must be an integer from 0/,
    };
    for (const [query, message] of Object.entries(problems)) {
      const bad = await w.api(`/api/prefetch?${query}`);
      assert.equal(bad.status, 400, query);
      assert.match(((await bad.json()) as { error: string }).error, message);
    }
  });
});
