// Prefetch of priors end to end, with real peers: Orthanc (DICOMweb plugin) is the clinic's archive and holds
// a prior study stored only there; DCMTK storescu sends a new study of the same patient to the appliance;
// the appliance forwards the new study first, then fetches the prior through read-through retrieve,
// byte-identical, as a cached copy that is never sent back.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { waitFor } from '../support/forward-harness.js';
import { requireTool, run, startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/study.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

let dir: string;
let orthanc: OrthancPeer;
let edge: WebAppliance;
const prior = makeStudy({ series: 2, instancesPerSeries: 2, patientId: 'PRIOR-PF', patientName: 'Prior^Patient', studyDate: '20240110', modality: 'CT', rows: 8, columns: 8 });
const older = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'PRIOR-PF', patientName: 'Prior^Patient', studyDate: '20230110', modality: 'MR', rows: 8, columns: 8 });
const other = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'SOMEONE-ELSE', studyDate: '20240110', modality: 'CT', rows: 8, columns: 8 });
const issuerA = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'SHARED-ID', studyDate: '20240110', modality: 'CT', rows: 8, columns: 8, extra: { IssuerOfPatientID: 'HOSP-A' } });
const issuerB = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'SHARED-ID', studyDate: '20240111', modality: 'CT', rows: 8, columns: 8, extra: { IssuerOfPatientID: 'HOSP-B' } });
const arrivingA = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'SHARED-ID', studyDate: '20250301', modality: 'CT', rows: 8, columns: 8, extra: { IssuerOfPatientID: 'HOSP-A' } });
const arriving = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'PRIOR-PF', patientName: 'Prior^Patient', studyDate: '20250301', modality: 'CT', rows: 8, columns: 8 });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dicom-edge-prefetch-e2e-'));
  orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
  for (const instance of [...prior, ...older, ...other, ...issuerA, ...issuerB]) {
    const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
    assert.equal(res.status, 200, await res.text());
  }
  const dataDir = join(dir, 'edge');
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
    log: { level: 'info' },
    destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, archive: true, retryBaseMs: 50, retryCapMs: 500, requestTimeoutMs: 10_000 }],
    // The CT rule wants the one most recent CT prior; the MR study is older than the age limit allows.
    cloud: { prefetch: { rules: [{ modalities: ['CT'], maxStudies: 1, maxAgeDays: 36_500 }, { modalities: ['MR'], maxStudies: 1, maxAgeDays: 30 }] } },
  }));
  edge = await startWebAppliance({ dataDir });
});

after(async () => {
  await edge?.stop();
  await orthanc?.stop();
  await rm(dir, { recursive: true, force: true });
});

const location = (uid: string) => edge.appliance.archive.cloud.studyLocation(uid);

test('a prior study stored only in the archive is prefetched when a new study for the same patient arrives', { timeout: 120_000 }, async () => {
  assert.equal(location(prior[0]!.studyUid), undefined, 'the appliance knows nothing of the prior');
  const files = await writeInstances(join(dir, 'arriving'), arriving);
  const storescu = requireTool('storescu', 'dcmtk');
  const sent = await run(storescu, ['-aec', edge.appliance.settings.aeTitle, '127.0.0.1', String(edge.dimsePort), ...files], { timeoutMs: 60_000 });
  assert.equal(sent.code, 0, sent.stderr);

  const jobs = edge.appliance.archive.prefetch;
  await waitFor(() => jobs.get(prior[0]!.studyUid)?.state === 'done',
    () => `prefetch job: ${JSON.stringify(jobs.get(prior[0]!.studyUid))}`, 60_000);
  // Forwarding went first: the fetch waited until what was pending for the archive had been delivered.
  const db = indexDb(edge.appliance.archive);
  const firstDelivered = db.prepare("SELECT MIN(updated_at) AS t FROM outbox WHERE study_uid = ? AND state = 'delivered'").get(arriving[0]!.studyUid) as { t: number | null };
  const firstFetched = db.prepare('SELECT MIN(received_at) AS t FROM instances WHERE study_uid = ?').get(prior[0]!.studyUid) as { t: number };
  assert.ok(firstDelivered.t !== null && firstFetched.t >= firstDelivered.t, `fetched at ${firstFetched.t}, first delivery at ${firstDelivered.t}`);
  await waitFor(() => (db.prepare("SELECT COUNT(*) AS n FROM outbox WHERE study_uid = ? AND state = 'delivered'").get(arriving[0]!.studyUid) as { n: number }).n === arriving.length,
    () => 'the new study is delivered to the archive');

  const here = location(prior[0]!.studyUid);
  assert.equal(here?.numLocalInstances, prior.length);
  for (const instance of prior) await assertLocalCopy(instance);
  assert.equal(jobs.get(prior[0]!.studyUid)?.instancesFetched, prior.length);
  assert.equal(jobs.get(prior[0]!.studyUid)?.triggerStudyUid, arriving[0]!.studyUid);
  assert.equal(jobs.get(older[0]!.studyUid), undefined, 'the MR study is beyond the MR rule\'s age');
  assert.equal(location(older[0]!.studyUid)?.location, 'cloud', 'but it is known now, as a cloud row');
  assert.equal(location(other[0]!.studyUid), undefined, 'another patient\'s study is none of this');
  const outbox = indexDb(edge.appliance.archive).prepare('SELECT COUNT(*) AS n FROM outbox WHERE study_uid = ?').get(prior[0]!.studyUid) as { n: number };
  assert.equal(outbox.n, 0, 'the fetched prior is never queued to be sent back');
});

test('a patient is PatientID plus issuer: the prior under the same ID from another issuer is not fetched', { timeout: 120_000 }, async () => {
  const files = await writeInstances(join(dir, 'arriving-a'), arrivingA);
  const sent = await run(requireTool('storescu', 'dcmtk'), ['-aec', edge.appliance.settings.aeTitle, '127.0.0.1', String(edge.dimsePort), ...files], { timeoutMs: 60_000 });
  assert.equal(sent.code, 0, sent.stderr);
  const jobs = edge.appliance.archive.prefetch;
  await waitFor(() => jobs.get(issuerA[0]!.studyUid)?.state === 'done', () => `prefetch job: ${JSON.stringify(jobs.get(issuerA[0]!.studyUid))}`, 60_000);
  await assertLocalCopy(issuerA[0]!);
  assert.equal(jobs.get(issuerB[0]!.studyUid), undefined, 'HOSP-B\'s patient is someone else');
});

async function assertLocalCopy(instance: GeneratedInstance): Promise<void> {
  const row = indexDb(edge.appliance.archive).prepare('SELECT path, local, in_cloud FROM instances WHERE sop_instance_uid = ?').get(instance.sopInstanceUid) as
    { path: string; local: number; in_cloud: number } | undefined;
  assert.deepEqual(row && { local: row.local, in_cloud: row.in_cloud }, { local: 1, in_cloud: 1 });
  assert.ok((await readFile(edge.appliance.archive.paths.absolute(row!.path))).equals(instance.buffer), 'byte-identical to the archive\'s');
}
