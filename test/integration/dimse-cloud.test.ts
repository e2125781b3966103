// DIMSE query/retrieve of what the cloud archive holds: DCMTK findscu plays the workstation, Orthanc with its
// DICOMweb plugin is the archive. A study stored here, delivered to the archive and evicted stays findable.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseFindOutput, type FindResult } from '../support/dcmtk-output.js';
import { startDimse, type DimseHarness } from '../support/dimse-harness.js';
import { requireTool, run, runOk, startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/study.js';

const small = { rows: 8, columns: 8 } as const;

async function findscu(h: DimseHarness, model: '-S' | '-P', keys: string[]): Promise<FindResult> {
  const result = await run(requireTool('findscu', 'dcmtk'),
    ['-v', model, '-aec', h.aeTitle, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(h.port)], { timeoutMs: 30_000 });
  return parseFindOutput(result.stderr + result.stdout);
}

/** Stores instances through DIMSE, delivers them to the archive (Orthanc) and marks them held there. */
async function storeAndDeliver(h: DimseHarness, orthanc: OrthancPeer, instances: GeneratedInstance[], dir: string): Promise<void> {
  const files = await writeInstances(dir, instances);
  await runOk(requireTool('storescu', 'dcmtk'), ['-aec', h.aeTitle, '127.0.0.1', String(h.port), ...files], { timeoutMs: 30_000 });
  for (const instance of instances) {
    const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
    assert.equal(res.status, 200, await res.text());
  }
  h.archive.cloud.markInCloud(instances.map((i) => i.sopInstanceUid));
}

describe('C-FIND of evicted data, with Orthanc as the archive', () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let h: DimseHarness;
  const evicted = makeStudy({ series: 2, instancesPerSeries: 2, patientName: 'Evicted^Eve', patientId: 'EVICTED-1', studyDate: '20200101', ...small });
  const local = makeStudy({ series: 1, instancesPerSeries: 2, patientName: 'Local^Lou', patientId: 'LOCAL-1', studyDate: '20240101', ...small });
  const studyUid = evicted[0]!.studyUid;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-dimse-cloud-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    h = await startDimse({
      destinations: [{ name: 'orthanc', archive: true, baseUrl: orthanc.dicomWebUrl }],
    });
    await storeAndDeliver(h, orthanc, evicted, join(dir, 'evicted'));
    for (const instance of evicted) assert.ok((await h.archive.evictInstance(instance.sopInstanceUid)) > 0, 'evicted');
    await runOk(requireTool('storescu', 'dcmtk'),
      ['-aec', h.aeTitle, '127.0.0.1', String(h.port), ...(await writeInstances(join(dir, 'local'), local))], { timeoutMs: 30_000 });
  });
  after(async () => {
    await h?.stop();
    await orthanc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('STUDY level: the evicted study is NEARLINE, the local one ONLINE, both with our RetrieveAETitle', async () => {
    const { responses, final } = await findscu(h, '-S', ['QueryRetrieveLevel=STUDY', 'PatientID', 'InstanceAvailability', 'NumberOfStudyRelatedInstances']);
    assert.equal(final, 'Success');
    const byPatient = Object.fromEntries(responses.map((r) => [r.PatientID, r]));
    assert.equal(byPatient['EVICTED-1']?.StudyInstanceUID, studyUid);
    assert.equal(byPatient['EVICTED-1']?.InstanceAvailability, 'NEARLINE');
    assert.equal(byPatient['EVICTED-1']?.NumberOfStudyRelatedInstances, '4');
    assert.equal(byPatient['LOCAL-1']?.InstanceAvailability, 'ONLINE');
    for (const r of responses) assert.equal(r.RetrieveAETitle, 'EDGE', 'RetrieveAETitle names us, though not asked for');
  });

  test('SERIES and IMAGE level: NEARLINE for every evicted series and instance', async () => {
    const series = await findscu(h, '-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${studyUid}`, 'InstanceAvailability', 'NumberOfSeriesRelatedInstances']);
    assert.deepEqual(series.responses.map((r) => r.SeriesInstanceUID).sort(), [...new Set(evicted.map((i) => i.seriesUid))].sort());
    for (const r of series.responses) {
      assert.equal(r.InstanceAvailability, 'NEARLINE');
      assert.equal(r.NumberOfSeriesRelatedInstances, '2');
      assert.equal(r.RetrieveAETitle, 'EDGE');
    }
    const images = await findscu(h, '-S', ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${studyUid}`, `SeriesInstanceUID=${evicted[0]!.seriesUid}`,
      'SOPInstanceUID', 'InstanceAvailability']);
    assert.deepEqual(images.responses.map((r) => r.SOPInstanceUID).sort(), evicted.slice(0, 2).map((i) => i.sopInstanceUid).sort());
    for (const r of images.responses) {
      assert.equal(r.InstanceAvailability, 'NEARLINE');
      assert.equal(r.RetrieveAETitle, 'EDGE');
    }
  });

  test('PATIENT level (Patient Root): a patient whose studies are all evicted is NEARLINE', async () => {
    const { responses } = await findscu(h, '-P', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'InstanceAvailability']);
    const byPatient = Object.fromEntries(responses.map((r) => [r.PatientID, r]));
    assert.equal(byPatient['EVICTED-1']?.InstanceAvailability, 'NEARLINE');
    assert.equal(byPatient['LOCAL-1']?.InstanceAvailability, 'ONLINE');
    assert.equal(byPatient['EVICTED-1']?.RetrieveAETitle, 'EDGE');
  });

  test('InstanceAvailability comes back though the identifier did not ask for it', async () => {
    const { responses } = await findscu(h, '-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${studyUid}`]);
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.InstanceAvailability, 'NEARLINE');
  });
});
