// DIMSE query/retrieve of the clinic's archive through the whole appliance: DCMTK findscu, movescu and getscu
// play the workstation, storescp the move destination. Orthanc with its DICOMweb plugin is the archive; the
// Azure DICOM double stands in where the test makes the archive stall or cut a retrieve mid-study.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IncomingMessage } from 'node:http';
import { dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { archiveRetrieveLimits } from '../../main/core/dimse/archive-retrieve.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { listenLoopback, type LoopbackServer } from '../doubles/http-server.js';
import { parseFindOutput, parseRetrieveOutput, type FindResult, type RetrieveResult } from '../support/dcmtk-output.js';
import { waitFor } from '../support/forward-harness.js';
import { indexDb } from '../support/index-db.js';
import { freePort, requireTool, run, runOk, startOrthanc, startStorescp, type OrthancPeer, type StorescpPeer } from '../support/peers.js';
import { SOP_CLASS_UIDS } from '../support/instance.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/study.js';
import { startGateProxy, type GateProxy } from '../support/gate-proxy.js';
import { holdCommits } from '../support/hold-commits.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

const small = { rows: 8, columns: 8 } as const;
const AE = 'EDGE';

async function findscu(w: WebAppliance, model: '-S' | '-P', keys: string[]): Promise<FindResult> {
  const result = await run(requireTool('findscu', 'dcmtk'),
    ['-v', model, '-aec', AE, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(w.dimsePort)], { timeoutMs: 30_000 });
  return parseFindOutput(result.stderr + result.stdout);
}

async function movescu(w: WebAppliance, destination: string, model: '-S' | '-P', keys: string[]): Promise<RetrieveResult> {
  const result = await run(requireTool('movescu', 'dcmtk'),
    ['-d', model, '-aec', AE, '-aem', destination, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(w.dimsePort)], { timeoutMs: 120_000 });
  return parseRetrieveOutput(result.stderr + result.stdout);
}

/** The data set of every file the destination received, by SOP Instance UID (DCMTK names files <modality>.<uid>). */
async function received(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const name of await readdir(dir)) {
    const bytes = await readFile(join(dir, name));
    let offset: number;
    try {
      offset = dataSetOffset(bytes);
    } catch {
      continue; // still being written
    }
    out.set(name.replace(/^[A-Z]{2}\./, ''), bytes.subarray(offset));
  }
  return out;
}

/** How many of the instances the destination has received. */
async function arrivedAt(dir: string, instances: readonly GeneratedInstance[]): Promise<number> {
  const files = await received(dir);
  return instances.filter((i) => files.has(i.sopInstanceUid)).length;
}

/** Every instance arrived at the destination, its data set byte for byte as the modality made it. */
async function assertDelivered(dir: string, instances: readonly GeneratedInstance[]): Promise<void> {
  const files = await received(dir);
  for (const instance of instances) {
    const got = files.get(instance.sopInstanceUid);
    assert.ok(got, `${instance.sopInstanceUid} reached the destination`);
    assert.ok(got.equals(instance.buffer.subarray(dataSetOffset(instance.buffer))), `${instance.sopInstanceUid} is byte-identical`);
  }
}

const localCount = (w: WebAppliance, studyUid: string) =>
  (indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE study_uid = ? AND local = 1').get(studyUid) as { n: number }).n;

async function send(w: WebAppliance, dir: string, instances: readonly GeneratedInstance[]): Promise<void> {
  const files = await writeInstances(await mkdtemp(join(dir, 'send-')), instances);
  await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', AE, '127.0.0.1', String(w.dimsePort), ...files], { timeoutMs: 60_000 });
}

/** Stored here through DIMSE, forwarded to the archive, confirmed there, then evicted: only in the archive now. */
async function storeDeliverEvict(w: WebAppliance, dir: string, instances: readonly GeneratedInstance[]): Promise<void> {
  await send(w, dir, instances);
  const db = indexDb(w.appliance.archive);
  const uids = instances.map((i) => i.sopInstanceUid);
  const inCloud = db.prepare(`SELECT COUNT(*) AS n FROM instances WHERE in_cloud = 1 AND sop_instance_uid IN (${uids.map(() => '?').join(',')})`);
  await waitFor(() => (inCloud.get(...uids) as { n: number }).n === uids.length, () => 'the archive confirmed every instance');
  for (const uid of uids) assert.ok((await w.appliance.archive.evictInstance(uid)) > 0, `${uid} evicted`);
}

async function seedOrthanc(orthanc: OrthancPeer, instances: readonly GeneratedInstance[]): Promise<void> {
  for (const instance of instances) {
    const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
    assert.equal(res.status, 200, await res.text());
  }
}

/**
 * Every pending response counts every sub-operation (remaining + done = all of them), one more done each
 * time. Pending responses wait until the archive has said how many there are, so the first may come late.
 */
function assertPendingCounts(result: RetrieveResult, total: number): void {
  assert.ok(result.pending.length > 0, `some pending responses:\n${result.output}`);
  result.pending.forEach((p, i) => {
    assert.equal((p.remaining ?? NaN) + (p.completed ?? NaN) + (p.failed ?? NaN) + (p.warning ?? NaN), total, `pending response ${i} counts them all`);
    if (i > 0) assert.equal(p.remaining, result.pending[i - 1]!.remaining! - 1, 'one sub-operation between pending responses');
  });
  assert.equal(result.pending.at(-1)!.remaining, 1);
}

const byKey = <T extends Record<string, string>>(rows: T[], key: string) => Object.fromEntries(rows.map((r) => [r[key], r]));

describe('DIMSE with Orthanc as the clinic\'s archive', { timeout: 300_000 }, () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let dest: StorescpPeer;
  let w: WebAppliance;
  let gate: GateProxy;
  const evicted = makeStudy({ series: 2, instancesPerSeries: 2, patientName: 'Evicted^Eve', patientId: 'EVICTED-1', studyDate: '20200101', ...small });
  const local = makeStudy({ series: 1, instancesPerSeries: 2, patientName: 'Local^Lou', patientId: 'LOCAL-1', studyDate: '20240101', ...small });
  const evictedUid = evicted[0]!.studyUid;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-dimse-cloud-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    dest = await startStorescp({ dir: join(dir, 'dest'), aet: 'DEST' });
    // Orthanc is reached through a proxy that passes everything on, unless a test makes it hold or cut.
    const upstream = new URL(orthanc.dicomWebUrl);
    gate = await startGateProxy(upstream.origin);
    w = await startWebAppliance({
      settings: {
        aeTitle: AE,
        peers: [{ aeTitle: 'DEST', host: '127.0.0.1', port: dest.port }],
        destinations: [{ name: 'orthanc', baseUrl: `${gate.origin}${upstream.pathname}`, archive: true, retryBaseMs: 50, retryCapMs: 500 }],
      },
    });
    await storeDeliverEvict(w, dir, evicted);
    await send(w, dir, local);
  });
  after(async () => {
    await w?.stop();
    await dest?.stop();
    await gate?.close();
    await orthanc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an evicted study is found by C-FIND as NEARLINE at every level, with our RetrieveAETitle', async () => {
    const studies = await findscu(w, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID', 'InstanceAvailability', 'NumberOfStudyRelatedInstances']);
    assert.equal(studies.final, 'Success');
    const byPatient = byKey(studies.responses, 'PatientID');
    assert.equal(byPatient['EVICTED-1']?.StudyInstanceUID, evictedUid);
    assert.equal(byPatient['EVICTED-1']?.InstanceAvailability, 'NEARLINE');
    assert.equal(byPatient['EVICTED-1']?.NumberOfStudyRelatedInstances, '4');
    assert.equal(byPatient['LOCAL-1']?.InstanceAvailability, 'ONLINE');
    assert.equal(studies.responses.filter((r) => r.StudyInstanceUID === evictedUid).length, 1, 'here and in the archive, answered once');
    for (const r of studies.responses) assert.equal(r.RetrieveAETitle, AE, 'RetrieveAETitle names us, though not asked for');

    const series = await findscu(w, '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${evictedUid}`, 'InstanceAvailability', 'NumberOfSeriesRelatedInstances']);
    assert.deepEqual(series.responses.map((r) => r.SeriesInstanceUID).sort(), [...new Set(evicted.map((i) => i.seriesUid))].sort());
    for (const r of series.responses) {
      assert.equal(r.InstanceAvailability, 'NEARLINE');
      assert.equal(r.NumberOfSeriesRelatedInstances, '2');
      assert.equal(r.RetrieveAETitle, AE);
    }
    const images = await findscu(w, '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${evictedUid}`, `SeriesInstanceUID=${evicted[0]!.seriesUid}`, 'SOPInstanceUID']);
    assert.deepEqual(images.responses.map((r) => r.SOPInstanceUID).sort(), evicted.slice(0, 2).map((i) => i.sopInstanceUid).sort());
    for (const r of images.responses) {
      assert.equal(r.InstanceAvailability, 'NEARLINE', 'returned though not asked for');
      assert.equal(r.RetrieveAETitle, AE);
    }
    const patients = await findscu(w, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'InstanceAvailability']);
    const patient = byKey(patients.responses, 'PatientID');
    assert.equal(patient['EVICTED-1']?.InstanceAvailability, 'NEARLINE');
    assert.equal(patient['LOCAL-1']?.InstanceAvailability, 'ONLINE');
    assert.equal(patient['EVICTED-1']?.RetrieveAETitle, AE);
  });

  test('C-FIND adds what only the archive holds, at every level and in both models', async () => {
    const prior = makeStudy({ series: 1, instancesPerSeries: 3, patientName: 'Prior^Pat', patientId: 'ONLY-ORTHANC', studyDate: '20150505', ...small });
    const priorUid = prior[0]!.studyUid;
    await seedOrthanc(orthanc, prior);
    const studies = await findscu(w, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID=ONLY-ORTHANC', 'PatientName', 'StudyDate', 'NumberOfStudyRelatedInstances']);
    assert.equal(studies.final, 'Success');
    assert.deepEqual(studies.responses.map((r) => [r.StudyInstanceUID, r.PatientName, r.StudyDate, r.InstanceAvailability]),
      [[priorUid, 'Prior^Pat', '20150505', 'NEARLINE']]);
    const patients = await findscu(w, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientID=ONLY-ORTHANC', 'PatientName']);
    assert.deepEqual(patients.responses.map((r) => [r.PatientID, r.PatientName, r.InstanceAvailability]), [['ONLY-ORTHANC', 'Prior^Pat', 'NEARLINE']]);
    const series = await findscu(w, '-P', ['QueryRetrieveLevel=SERIES', 'PatientID=ONLY-ORTHANC', `StudyInstanceUID=${priorUid}`, 'Modality']);
    assert.deepEqual(series.responses.map((r) => [r.SeriesInstanceUID, r.Modality]), [[prior[0]!.seriesUid, 'CT']]);
    const images = await findscu(w, '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${priorUid}`, `SeriesInstanceUID=${prior[0]!.seriesUid}`, 'SOPInstanceUID', 'InstanceNumber']);
    assert.deepEqual(images.responses.map((r) => r.SOPInstanceUID).sort(), prior.map((i) => i.sopInstanceUid).sort());
    assert.deepEqual(images.responses.map((r) => r.InstanceNumber).sort(), ['1', '2', '3']);
    assert.equal(localCount(w, priorUid), 0, 'found, not fetched');
  });

  test('C-MOVE of a study only in the archive delivers every instance to storescp, with the right counts', async () => {
    const prior = makeStudy({ series: 2, instancesPerSeries: 3, patientName: 'Moved^Prior', patientId: 'MOVE-PRIOR', studyDate: '20160606', ...small });
    const priorUid = prior[0]!.studyUid;
    await seedOrthanc(orthanc, prior);
    // The workstation found it with C-FIND first, as a workstation does: the index knows the study, not its instances.
    assert.equal((await findscu(w, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID=MOVE-PRIOR'])).responses.length, 1);
    const result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${priorUid}`]);
    assert.equal(result.final.status, 0x0000, result.output);
    assertPendingCounts(result, 6);
    assert.deepEqual([result.final.completed, result.final.failed, result.final.warning], [6, 0, 0]);
    await assertDelivered(dest.dir, prior);
    assert.equal(localCount(w, priorUid), prior.length, 'fetched through the archive into the cache');
  });

  test('C-MOVE of a study partly here and partly only in the archive (Patient Root, SERIES and IMAGE level too)', async () => {
    const study = makeStudy({ series: 2, instancesPerSeries: 2, patientName: 'Mixed^Max', patientId: 'MIXED-1', ...small });
    const [here, gone] = [study.filter((i) => i.seriesUid === study[0]!.seriesUid), study.filter((i) => i.seriesUid !== study[0]!.seriesUid)];
    await storeDeliverEvict(w, dir, gone);
    await send(w, dir, here);
    const result = await movescu(w, 'DEST', '-P', ['QueryRetrieveLevel=STUDY', 'PatientID=MIXED-1', `StudyInstanceUID=${study[0]!.studyUid}`]);
    assert.equal(result.final.status, 0x0000, result.output);
    assert.deepEqual(result.pending.map((p) => p.remaining), [3, 2, 1]);
    assert.equal(result.final.completed, 4);
    await assertDelivered(dest.dir, study);

    // Evicted again, then one series and one instance of it.
    for (const instance of gone) await w.appliance.archive.evictInstance(instance.sopInstanceUid);
    const series = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${study[0]!.studyUid}`, `SeriesInstanceUID=${gone[0]!.seriesUid}`]);
    assert.deepEqual([series.final.status, series.final.completed, series.final.failed], [0, 2, 0], series.output);
    await w.appliance.archive.evictInstance(gone[1]!.sopInstanceUid);
    const image = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${study[0]!.studyUid}`,
      `SeriesInstanceUID=${gone[1]!.seriesUid}`, `SOPInstanceUID=${gone[1]!.sopInstanceUid}`]);
    assert.deepEqual([image.final.status, image.final.completed, image.final.failed], [0, 1, 0], image.output);
  });

  test('C-GET of an evicted study: getscu receives every instance byte-identical', async () => {
    assert.equal(localCount(w, evictedUid), 0, 'still only in the archive');
    const out = join(dir, 'get');
    await mkdir(out, { recursive: true });
    const result = await run(requireTool('getscu', 'dcmtk'),
      ['-d', '-S', '-aec', AE, '-od', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${evictedUid}`, '127.0.0.1', String(w.dimsePort)],
      { timeoutMs: 120_000 });
    const parsed = parseRetrieveOutput(result.stderr + result.stdout);
    assert.equal(parsed.final.status, 0x0000, parsed.output);
    assert.deepEqual(parsed.pending.map((p) => p.remaining), [3, 2, 1]);
    assert.equal(parsed.final.completed, evicted.length);
    await assertDelivered(out, evicted);
  });

  /** A study only Orthanc holds, found by a study-level C-FIND first (as a workstation does). */
  async function priorInOrthanc(patientId: string, count: number): Promise<GeneratedInstance[]> {
    const prior = makeStudy({ series: 1, instancesPerSeries: count, patientId, ...small });
    await seedOrthanc(orthanc, prior);
    assert.equal((await findscu(w, '-S', ['QueryRetrieveLevel=STUDY', `PatientID=${patientId}`])).responses.length, 1);
    return prior;
  }
  const isListing = (req: IncomingMessage) => req.method === 'GET' && /\/instances\?/.test(req.url ?? '') && !/\/instances\/[^?]/.test(req.url ?? '');

  /**
   * A study-level C-MOVE to DEST while the archive's listing of the study is held: resolves once every instance
   * of `study` has arrived at storescp and `whileHeld` has run, then lets the listing go and waits for the move.
   */
  async function moveWithListingHeld(study: readonly GeneratedInstance[], whileHeld: () => Promise<unknown> = async () => undefined): Promise<RetrieveResult> {
    const studyUid = study[0]!.studyUid;
    let openListing!: () => void;
    const listingHeld = new Promise<void>((resolve) => (openListing = resolve));
    gate.hold = (req) => (isListing(req) && req.url!.includes(studyUid) ? listingHeld : undefined);
    try {
      const moving = movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`]);
      await waitFor(async () => (await arrivedAt(dest.dir, study)) === study.length, () => `${dest.log()}`, 60_000);
      await whileHeld();
      openListing();
      return await moving;
    } finally {
      openListing();
      gate.hold = undefined;
    }
  }

  test('C-MOVE from the archive sends each instance as its bytes arrive: before it is committed here, and before the archive has listed the study', async () => {
    const prior = await priorInOrthanc('MOVE-LIVE', 4);
    const studyUid = prior[0]!.studyUid;
    const releaseCommits = holdCommits(w, prior.map((i) => i.sopInstanceUid));
    let result: RetrieveResult;
    try {
      result = await moveWithListingHeld(prior, async () => {
        // Neither the listing nor any commit is in, and the whole study is at the destination.
        assert.equal(localCount(w, studyUid), 0, 'nothing committed here yet');
        assert.ok(gate.seen.some((line) => line.includes(studyUid) && /\/instances\?/.test(line)), 'the listing was asked for, and is held');
      });
    } finally {
      await releaseCommits();
    }
    assert.equal(result.final.status, 0x0000, result.output);
    assert.deepEqual([result.final.completed, result.final.failed, result.final.warning], [prior.length, 0, 0]);
    for (const p of result.pending) assert.equal((p.remaining ?? 0) + (p.completed ?? 0) + (p.failed ?? 0) + (p.warning ?? 0), prior.length, result.output);
    await assertDelivered(dest.dir, prior);
    assert.equal(gate.seen.filter((line) => line.includes(studyUid) && /\/instances\?/.test(line)).length, 1, 'the archive is asked for the list once');
    // The durable ingest still happens.
    await waitFor(() => localCount(w, studyUid) === prior.length, () => `${localCount(w, studyUid)} of ${prior.length} committed`);
  });

  test('C-MOVE of a study nothing here has ever named: the fetch starts at once, and storescp gets it while the archive lists it', async () => {
    // No C-FIND first: the index knows nothing of the study, not even that the archive holds it.
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'MOVE-NEVER-SEEN', ...small });
    const studyUid = study[0]!.studyUid;
    await seedOrthanc(orthanc, study);
    const result = await moveWithListingHeld(study, () =>
      waitFor(() => gate.seen.some((line) => line.includes(studyUid) && /\/instances\?/.test(line)), () => 'the listing was asked for, and is held'));
    assert.equal(result.final.status, 0x0000, result.output);
    assert.deepEqual([result.final.completed, result.final.failed, result.final.warning], [study.length, 0, 0]);
    for (const p of result.pending) assert.equal((p.remaining ?? 0) + (p.completed ?? 0) + (p.failed ?? 0) + (p.warning ?? 0), study.length, result.output);
    await assertDelivered(dest.dir, study);
    await waitFor(() => localCount(w, studyUid) === study.length, () => `${localCount(w, studyUid)} of ${study.length} committed`);
  });

  test('C-MOVE from the archive before its listing is in: an instance of another SOP class goes over a new association that proposes it', async () => {
    const ct = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'MOVE-CLASSES', ...small });
    const studyUid = ct[0]!.studyUid;
    const sc = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'MOVE-CLASSES', studyUid, sopClassUid: SOP_CLASS_UIDS.secondaryCapture, ...small });
    const study = [...ct, ...sc];
    await seedOrthanc(orthanc, study);
    assert.equal((await findscu(w, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID=MOVE-CLASSES'])).responses.length, 1);
    const result = await moveWithListingHeld(study);
    assert.equal(result.final.status, 0x0000, result.output);
    assert.deepEqual([result.final.completed, result.final.failed], [study.length, 0]);
    await assertDelivered(dest.dir, study);
    assert.ok((await logLines(w)).some((l) => l.event === 'c-move-reassociate'), 'a second association');
  });

  test('C-GET from the archive hands each instance back as its bytes arrive, before it is committed here', async () => {
    const prior = await priorInOrthanc('GET-LIVE', 3);
    const studyUid = prior[0]!.studyUid;
    const out = join(dir, 'get-live');
    await mkdir(out, { recursive: true });
    const releaseCommits = holdCommits(w, prior.map((i) => i.sopInstanceUid));
    let parsed: RetrieveResult;
    try {
      const getting = run(requireTool('getscu', 'dcmtk'),
        ['-d', '-S', '-aec', AE, '-od', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(w.dimsePort)],
        { timeoutMs: 120_000 });
      await waitFor(async () => (await arrivedAt(out, prior)) === prior.length, () => 'getscu received the study', 60_000);
      assert.equal(localCount(w, studyUid), 0, 'nothing committed here yet');
      const result = await getting;
      parsed = parseRetrieveOutput(result.stderr + result.stdout);
    } finally {
      await releaseCommits();
    }
    assert.equal(parsed.final.status, 0x0000, parsed.output);
    assert.deepEqual([parsed.final.completed, parsed.final.failed], [prior.length, 0]);
    await assertDelivered(out, prior);
  });

  test('C-MOVE and C-GET from the archive of an instance larger than a retrieve may hold: declined part-way, sent from its file, byte-identical', async () => {
    const saved = archiveRetrieveLimits.heldInstanceBytes;
    archiveRetrieveLimits.heldInstanceBytes = 128 * 1024;
    try {
      const [small1, small2] = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'MOVE-LARGE', ...small });
      const studyUid = small1!.studyUid;
      // 512 × 512 × 16 bits: four times the limit, as a whole-slide image is to the real one.
      const [large] = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'MOVE-LARGE', studyUid, rows: 512, columns: 512 });
      const study = [small1!, large!, small2!];
      await seedOrthanc(orthanc, study);
      const result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`]);
      assert.equal(result.final.status, 0x0000, result.output);
      assert.deepEqual([result.final.completed, result.final.failed, result.final.warning], [study.length, 0, 0]);
      await assertDelivered(dest.dir, study);
      const [{ ID: orthancId }] = (await (await fetch(`${orthanc.httpUrl}/tools/lookup`, { method: 'POST', body: large!.sopInstanceUid })).json()) as [{ ID: string }];
      const inOrthanc = Buffer.from(await (await fetch(`${orthanc.httpUrl}/instances/${orthancId}/file`)).arrayBuffer());
      assert.ok((await received(dest.dir)).get(large!.sopInstanceUid)!.equals(inOrthanc.subarray(dataSetOffset(inOrthanc))), 'the data set Orthanc holds, byte for byte');
      // Sent from its file: the log says so (what the retrieve held of it is the unit test's to count).
      const declined = async () => (await logLines(w)).filter((l) => l.event === 'retrieve-archive-part-from-file' && l.studyUid === studyUid);
      await waitFor(async () => (await declined()).length > 0, () => 'no retrieve-archive-part-from-file line');
      assert.deepEqual((await declined()).map((l) => l.sopInstanceUid), [large!.sopInstanceUid], 'only the large one was declined');

      // C-GET the same way: back on the requesting association, from the file.
      const [gotLarge] = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'GET-LARGE', rows: 512, columns: 512 });
      await seedOrthanc(orthanc, [gotLarge!]);
      const out = join(dir, 'get-large');
      await mkdir(out, { recursive: true });
      const got = await run(requireTool('getscu', 'dcmtk'), ['-d', '-S', '-aec', AE, '-od', out, '-k', 'QueryRetrieveLevel=STUDY',
        '-k', `StudyInstanceUID=${gotLarge!.studyUid}`, '127.0.0.1', String(w.dimsePort)], { timeoutMs: 120_000 });
      const parsed = parseRetrieveOutput(got.stderr + got.stdout);
      assert.deepEqual([parsed.final.status, parsed.final.completed, parsed.final.failed], [0, 1, 0], parsed.output);
      await assertDelivered(out, [gotLarge!]);
      await waitFor(async () => (await logLines(w)).some((l) => l.event === 'retrieve-archive-part-from-file' && l.sopInstanceUid === gotLarge!.sopInstanceUid),
        () => 'the C-GET did not send it from its file');
    } finally {
      archiveRetrieveLimits.heldInstanceBytes = saved;
    }
  });

  test('C-MOVE from the archive with the listing answered first: a pending response after each sub-operation, with the right counts', async () => {
    const prior = await priorInOrthanc('MOVE-COUNTED', 5);
    const result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${prior[0]!.studyUid}`]);
    assert.equal(result.final.status, 0x0000, result.output);
    assertPendingCounts(result, prior.length);
    assert.deepEqual([result.final.completed, result.final.failed, result.final.warning], [prior.length, 0, 0]);
    await assertDelivered(dest.dir, prior);
  });

  test('Orthanc cut mid-move: what arrived is delivered, the rest fails with 0xB000 and its UIDs in the Failed SOP Instance UID List', async () => {
    const prior = await priorInOrthanc('MOVE-CUT', 5);
    const studyUid = prior[0]!.studyUid;
    gate.cutAfterParts = (req) => (req.url?.endsWith(`/studies/${studyUid}`) ? 2 : undefined);
    let result: RetrieveResult;
    try {
      result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`]);
    } finally {
      gate.cutAfterParts = undefined;
    }
    assert.equal(result.final.status, 0xb000, result.output);
    assert.deepEqual([result.final.completed, result.final.failed, result.final.warning], [2, 3, 0], result.output);
    const delivered = new Set((await received(dest.dir)).keys());
    const missing = prior.filter((i) => !delivered.has(i.sopInstanceUid)).map((i) => i.sopInstanceUid);
    assert.equal(missing.length, 3);
    assert.deepEqual([...result.failedUids].sort(), missing.sort(), 'FailedSOPInstanceUIDList names the ones not delivered');
    assert.equal(localCount(w, studyUid), 2, 'the whole instances that arrived are kept');
  });
});

describe('DIMSE retrieve when the archive stalls or fails (the Azure DICOM double)', { timeout: 300_000 }, () => {
  let dir: string;
  let azure: AzureDicomDouble;
  let dest: StorescpPeer;
  let w: WebAppliance;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-dimse-cloud-azure-'));
    azure = await AzureDicomDouble.start();
    dest = await startStorescp({ dir: join(dir, 'dest'), aet: 'DEST' });
    w = await startWebAppliance({
      settings: {
        aeTitle: AE,
        peers: [{ aeTitle: 'DEST', host: '127.0.0.1', port: dest.port }],
        destinations: [{ name: 'azure', baseUrl: azure.baseUrl, archive: true, retryBaseMs: 50, retryCapMs: 500 }],
      },
    });
  });
  after(async () => {
    await w?.stop();
    await dest?.stop();
    await azure?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const seed = (instances: readonly GeneratedInstance[]) => instances.forEach((i) => azure.seedInstance(i.buffer));

  test('C-MOVE sends each instance on as it arrives: the first ones reach storescp while the archive holds back the rest', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 6, patientId: 'STREAMED', ...small });
    seed(study);
    let release!: () => void;
    await azure.setFault({ kind: 'hold-retrieve', afterParts: 3, until: new Promise<void>((resolve) => (release = resolve)), times: 1 });
    const moving = movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study[0]!.studyUid}`]);
    try {
      // The archive has sent three instances and waits: at least the two whose end it has seen are at the destination.
      await waitFor(async () => (await arrivedAt(dest.dir, study)) >= 2, () => `${dest.log()}`, 60_000);
      assert.ok((await arrivedAt(dest.dir, study)) < study.length, 'the rest is still held by the archive');
    } finally {
      release();
    }
    const result = await moving;
    assert.equal(result.final.status, 0x0000, result.output);
    assertPendingCounts(result, study.length);
    assert.equal(result.final.completed, study.length);
    await assertDelivered(dest.dir, study.map((i) => ({ ...i, buffer: Buffer.concat([Buffer.alloc(128), i.buffer.subarray(128)]) })));
  });

  test('a fetch cut mid-study: what arrived is delivered, the rest fails with 0xB000 and its UIDs listed', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 4, patientId: 'CUT-MOVE', ...small });
    seed(study);
    await azure.setFault({ kind: 'cut-retrieve', afterParts: 2, times: 1 });
    const result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study[0]!.studyUid}`]);
    assert.equal(result.final.status, 0xb000, result.output);
    assert.deepEqual([result.final.completed, result.final.failed], [2, 2]);
    const delivered = new Set((await received(dest.dir)).keys());
    const missing = study.filter((i) => !delivered.has(i.sopInstanceUid)).map((i) => i.sopInstanceUid);
    assert.equal(missing.length, 2);
    assert.deepEqual([...result.failedUids].sort(), missing.sort(), 'FailedSOPInstanceUIDList names the ones not delivered');
  });

  test('the archive unreachable for the listing of a study partly here: the local instances go, and the end is 0xB000, not Success', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'LIST-FAILED', ...small });
    seed(study);
    // Two of them are here; a search of the archive has said that it holds three (as a QIDO answer leaves it).
    await send(w, dir, study.slice(0, 2));
    w.appliance.archive.cloud.upsert('study', [{ '0020000D': { vr: 'UI', Value: [study[0]!.studyUid] }, '00201208': { vr: 'IS', Value: [3] } }]);
    await azure.setFault({ kind: 'down', mode: 'reset' });
    try {
      const result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study[0]!.studyUid}`]);
      assert.equal(result.final.status, 0xb000, result.output);
      assert.deepEqual([result.final.completed, result.final.failed], [2, 0]);
      assert.match(result.output, /archive not reachable/, 'the comment says why');
      await assertDelivered(dest.dir, study.slice(0, 2));
    } finally {
      await azure.setFault(undefined);
    }
  });

  test('the archive gone once the study is listed: every sub-operation fails, 0xA702 with every UID', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'ARCHIVE-GONE', ...small });
    seed(study);
    // Listed by an IMAGE-level C-FIND, so the retrieve has its count without asking the archive again.
    assert.equal((await findscu(w, '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${study[0]!.studyUid}`, 'SOPInstanceUID'])).responses.length, 3);
    await azure.setFault({ kind: 'down', mode: 'reset' });
    try {
      const result = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study[0]!.studyUid}`]);
      assert.equal(result.final.status, 0xa702, result.output);
      assert.deepEqual([result.final.completed, result.final.failed], [0, 3]);
      assert.deepEqual([...result.failedUids].sort(), study.map((i) => i.sopInstanceUid).sort());

      // A study the index has never heard of cannot be counted without the archive: 0xA701.
      const unknown = await movescu(w, 'DEST', '-S', ['QueryRetrieveLevel=STUDY', 'StudyInstanceUID=1.2.826.0.1.3680043.10.99']);
      assert.equal(unknown.final.status, 0xa701, unknown.output);
    } finally {
      await azure.setFault(undefined);
    }
  });
});

describe('C-FIND with the archive offline or slow', { timeout: 180_000 }, () => {
  let dir: string;
  let silent: LoopbackServer;
  let w: WebAppliance;
  const here = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'OFFLINE-FIND', ...small });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-dimse-cloud-offline-'));
    silent = await listenLoopback(() => new Promise<void>(() => undefined));
    w = await startWebAppliance({ settings: { aeTitle: AE } });
    await send(w, dir, here);
  });
  after(async () => {
    await w?.stop();
    await silent?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('local results come back within the time limit, and the missing archive part is logged with the peer and reason', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/v2`;
    for (const [baseUrl, reason] of [[closed, 'offline'], [`${silent.origin}/v2`, 'timeout']] as const) {
      const settings = (await (await w.api('/api/settings')).json()) as Record<string, any>;
      settings.destinations = [{ name: 'archive', baseUrl, archive: true }];
      settings.cloud = { ...settings.cloud, federation: { enabled: true, timeoutMs: 1000 } };
      const put = await w.api('/api/settings', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) });
      assert.equal(put.status, 200, await put.text());
      const started = Date.now();
      const { responses, final } = await findscu(w, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID=OFFLINE-FIND']);
      const elapsed = Date.now() - started;
      assert.equal(final, 'Success');
      assert.deepEqual(responses.map((r) => [r.StudyInstanceUID, r.InstanceAvailability]), [[here[0]!.studyUid, 'ONLINE']]);
      assert.ok(elapsed < 1000 + 10_000, `answered in ${elapsed} ms with a 1000 ms limit`);
      const line = (await waitFor(async () => (await logLines(w)).find((l) => l.event === 'c-find-archive-missing' && l.reason === reason),
        () => `no c-find-archive-missing line with reason ${reason}`))!;
      assert.equal(line.level, 40, 'a warning');
      assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);
      assert.equal(line.callingAe, 'FINDSCU');
      const warned = (await logLines(w)).filter((l) => l.level === 40 && l.reason === reason && /archive-missing/.test(String(l.event)));
      assert.deepEqual(warned.map((l) => l.event), ['c-find-archive-missing'], 'one warning per C-FIND');
    }
    // The query level has a field of its own: pino's `level` stays the log level.
    const find = (await logLines(w)).find((l) => l.event === 'c-find');
    assert.deepEqual([find?.level, find?.queryLevel], [30, 'STUDY']);
  });
});
