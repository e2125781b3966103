import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

const STUDIES: Array<Parameters<typeof makeStudy>[0]> = [
  { series: 2, instancesPerSeries: 2, patientName: 'Smith^John', patientId: 'ID001', studyDate: '20240105', accession: 'ACC1', modality: 'CT', studyDescription: 'Chest' },
  { series: 1, instancesPerSeries: 3, patientName: 'Smithers^Waylon', patientId: 'ID002', studyDate: '20240120', accession: 'ACC2', modality: 'MR', studyDescription: 'Head' },
  { series: 1, instancesPerSeries: 1, patientName: 'Jones^Alice', patientId: 'ID003', studyDate: '20240215', accession: 'ACC3', modality: 'CT', studyDescription: 'Abdomen' },
  { series: 3, instancesPerSeries: 1, patientName: 'Jones^Bob', patientId: 'ID003', studyDate: '20231231', accession: 'ACC4', modality: 'MR', studyDescription: 'Knee' },
  { series: 1, instancesPerSeries: 2, patientName: 'Brown^Carol', patientId: 'ID004', studyDate: '20240301', accession: 'ACC5', modality: 'CT', studyDescription: 'Chest follow-up' },
];

/** Same QIDO query strings against both servers; the matched UID sets must agree. */
const QUERIES: Array<{ path: string; key: string }> = [
  { path: '/studies?PatientName=Smith*', key: '0020000D' },
  { path: '/studies?PatientName=*ones*', key: '0020000D' },
  { path: '/studies?PatientID=ID003', key: '0020000D' },
  { path: '/studies?StudyDate=20240101-20240131', key: '0020000D' },
  { path: '/studies?StudyDate=20240201-', key: '0020000D' },
  { path: '/studies?StudyDate=-20231231', key: '0020000D' },
  { path: '/studies?ModalitiesInStudy=MR', key: '0020000D' },
  { path: '/studies?StudyDate=20240101-20241231&ModalitiesInStudy=CT', key: '0020000D' },
  { path: '/studies?AccessionNumber=ACC3', key: '0020000D' },
  { path: '/studies?StudyDescription=Chest*', key: '0020000D' },
  { path: '/studies?PatientID=NOSUCH', key: '0020000D' },
  { path: '/series?Modality=CT', key: '0020000E' },
  { path: '/series?Modality=MR&PatientID=ID003', key: '0020000E' },
  { path: '/instances?PatientID=ID001', key: '00080018' },
];

async function uids(response: Response, key: string): Promise<string[]> {
  assert.ok(response.status === 200 || response.status === 204, `status ${response.status}: ${await response.clone().text()}`);
  if (response.status === 204) return [];
  const text = await response.text();
  if (text.trim() === '') return [];
  return (JSON.parse(text) as Array<Record<string, { Value: string[] }>>).map((r) => r[key]!.Value[0]!).sort();
}

describe('QIDO-RS agrees with Orthanc', () => {
  let w: WebAppliance;
  let orthanc: OrthancPeer;
  let dir: string;
  const instances: GeneratedInstance[] = STUDIES.flatMap((s) => makeStudy(s));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-orthanc-qido-'));
    orthanc = await startOrthanc({ dir });
    w = await startWebAppliance();
    for (const instance of instances) {
      const toOrthanc = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(toOrthanc.status, 200, await toOrthanc.text());
      await w.appliance.archive.ingest(Readable.from([instance.buffer]), { callingAe: 'TEST', peer: 'test' });
    }
  });
  after(async () => {
    await w?.stop();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const query of QUERIES) {
    test(query.path, async () => {
      const ours = await uids(await w.api(`/dicom-web${query.path}`), query.key);
      const theirs = await uids(await fetch(`${orthanc.dicomWebUrl}${query.path}`), query.key);
      assert.deepEqual(ours, theirs);
    });
  }

  test('a study-level query with a lower-level key (ModalitiesInStudy) matches the same studies with includefield', async () => {
    const path = '/studies?ModalitiesInStudy=CT&includefield=00081030';
    const ours = await uids(await w.api(`/dicom-web${path}`), '0020000D');
    const theirs = await uids(await fetch(`${orthanc.dicomWebUrl}${path}`), '0020000D');
    assert.deepEqual(ours, theirs);
  });
});
