// Federated search (cloud/federated-search.ts): local and archive matches merged through the index, with the
// Azure DICOM double as the archive, an upstream that never answers (the time limit) and a closed port
// (offline). Orthanc as the archive, through QIDO-RS, is in test/integration/cloud-read-through.test.ts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ArchiveReader } from '../../main/core/cloud/archive-reader.js';
import { MAX_ARCHIVE_MATCHES, toQidoSearch } from '../../main/core/cloud/federated-query.js';
import { FederatedSearch } from '../../main/core/cloud/federated-search.js';
import { InvalidMatchKeyError } from '../../main/core/dicom/matching.js';
import { createAuthProvider } from '../../main/core/forward/auth.js';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { listenLoopback, type LoopbackServer } from '../doubles/http-server.js';
import { makeInstance } from '../support/instance.js';
import { freePort } from '../support/net.js';
import { makeStudy } from '../support/study.js';
import { newUid } from '../support/uid.js';

const silent = pino({ level: 'silent' });
const none = createAuthProvider({ kind: 'none' });
const small = { rows: 8, columns: 8 } as const;

describe('toQidoSearch: the shared query request as the archive\'s QIDO-RS search', () => {
  test('levels, path scope from single UIDs, lists, universal keys left out, paging', () => {
    const study = '1.2.3.4';
    assert.deepEqual(
      toQidoSearch({ level: 'IMAGE', keys: { StudyInstanceUID: study, SeriesInstanceUID: '1.2.3.5', SOPInstanceUID: '1.2.3.6\\1.2.3.7', PatientName: '' }, limit: 10, offset: 5 }),
      {
        level: 'instance', studyUid: study, seriesUid: '1.2.3.5', match: { SOPInstanceUID: ['1.2.3.6', '1.2.3.7'] },
        includeFields: toQidoSearch({ level: 'IMAGE', keys: {} }).includeFields, fuzzy: undefined, limit: 15, pageSize: 200,
      },
    );
    const series = toQidoSearch({ level: 'SERIES', keys: { '0020000D': `${study}\\1.2.3.8`, Modality: 'CT', QueryRetrieveLevel: 'SERIES' }, fuzzy: true });
    assert.equal(series.level, 'series');
    assert.equal(series.studyUid, undefined, 'a UID list is a key, not a scope');
    assert.deepEqual(series.match, { StudyInstanceUID: [study, '1.2.3.8'], Modality: 'CT' });
    assert.equal(series.fuzzy, true);
    assert.equal(series.limit, MAX_ARCHIVE_MATCHES);
    const patients = toQidoSearch({ level: 'PATIENT', keys: { PatientName: 'DOE*', ModalitiesInStudy: 'CT\\MR', StudyDate: '20240101-20241231' } });
    assert.equal(patients.level, 'study');
    assert.deepEqual(patients.match, { PatientName: 'DOE*', ModalitiesInStudy: ['CT', 'MR'], StudyDate: '20240101-20241231' });
    assert.ok(patients.includeFields !== 'all' && patients.includeFields?.includes('NumberOfStudyRelatedInstances'));
  });
});

describe('federated search', () => {
  let azure: AzureDicomDouble;
  let silentUpstream: LoopbackServer;
  let dir: string;
  let archive: Archive;
  let readers: Record<'azure' | 'slow' | 'closed', ArchiveReader>;
  let current: ArchiveReader | undefined;
  const federation = { enabled: true, timeoutMs: 300 };
  let search: FederatedSearch;

  const patientId = 'FED-PATIENT';
  const sharedStudy = newUid();
  const sharedSeries = newUid();
  const sharedSop = newUid();
  const cloudOnly = makeStudy({ series: 1, instancesPerSeries: 2, patientId, patientName: 'Cloud^Only', studyDate: '20200101', ...small });
  const localOnly = makeStudy({ series: 1, instancesPerSeries: 1, patientId, patientName: 'Here^Only', studyDate: '20240101', ...small });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-federated-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: silent, route: () => [] }));
    azure = await AzureDicomDouble.start();
    // Never answers: the archive is slow.
    silentUpstream = await listenLoopback(() => new Promise<void>(() => undefined));
    readers = {
      azure: new ArchiveReader({ baseUrl: azure.baseUrl, auth: none, name: 'azure' }),
      slow: new ArchiveReader({ baseUrl: `${silentUpstream.origin}/v2`, auth: none, name: 'slow' }),
      closed: new ArchiveReader({ baseUrl: `http://127.0.0.1:${await freePort()}/v2`, auth: none, name: 'closed' }),
    };
    search = new FederatedSearch({ archive, reader: () => current, settings: () => ({ cloud: { federation } }), logger: silent });

    // One study here and in the archive (where it carries another name: the local copy wins), one only here,
    // one only in the archive.
    const shared = { studyUid: sharedStudy, seriesUid: sharedSeries, sopInstanceUid: sharedSop, patientId, studyDate: '20230101', ...small };
    await archive.ingest(Readable.from([makeInstance({ ...shared, patientName: 'Local^Name' })]), { callingAe: 'MODALITY', peer: 'test' });
    azure.seedInstance(makeInstance({ ...shared, patientName: 'Cloud^Name' }));
    for (const instance of localOnly) await archive.ingest(Readable.from([instance.buffer]), { callingAe: 'MODALITY', peer: 'test' });
    for (const instance of cloudOnly) azure.seedInstance(instance.buffer);
  });
  after(async () => {
    for (const reader of Object.values(readers ?? {})) await reader.close();
    await silentUpstream?.close();
    await azure?.stop();
    await archive?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('local and archive matches merged: each UID once, the local copy\'s attributes, ONLINE here and NEARLINE in the archive', async () => {
    current = readers.azure;
    const result = await search.search({ level: 'STUDY', keys: { PatientID: patientId } });
    assert.deepEqual(result.archive, { state: 'included', matches: 2 });
    const byUid = new Map(result.matches.map((m) => [m.StudyInstanceUID, m]));
    assert.equal(result.matches.length, 3, 'no duplicate UIDs');
    assert.equal(byUid.get(sharedStudy)?.PatientName, 'Local^Name');
    assert.equal(byUid.get(sharedStudy)?.InstanceAvailability, 'ONLINE');
    assert.equal(byUid.get(localOnly[0]!.studyUid)?.InstanceAvailability, 'ONLINE');
    assert.equal(byUid.get(cloudOnly[0]!.studyUid)?.InstanceAvailability, 'NEARLINE');
    assert.equal(byUid.get(cloudOnly[0]!.studyUid)?.PatientName, 'Cloud^Only');
    assert.deepEqual(azure.requestsOf('search').map((r) => r.path), ['/v2/studies']);

    const series = await search.search({ level: 'SERIES', keys: { StudyInstanceUID: cloudOnly[0]!.studyUid } });
    assert.equal(series.archive.state, 'included');
    assert.deepEqual(series.matches.map((m) => [m.SeriesInstanceUID, m.InstanceAvailability]), [[cloudOnly[0]!.seriesUid, 'NEARLINE']]);
    const instances = await search.search({ level: 'IMAGE', keys: { StudyInstanceUID: cloudOnly[0]!.studyUid, SeriesInstanceUID: cloudOnly[0]!.seriesUid } });
    assert.deepEqual(instances.matches.map((m) => m.SOPInstanceUID).sort(), cloudOnly.map((i) => i.sopInstanceUid).sort());
    assert.ok(instances.matches.every((m) => m.InstanceAvailability === 'NEARLINE'));
    assert.deepEqual(azure.requestsOf('search').slice(1).map((r) => r.path),
      [`/v2/studies/${cloudOnly[0]!.studyUid}/series`, `/v2/studies/${cloudOnly[0]!.studyUid}/series/${cloudOnly[0]!.seriesUid}/instances`]);
  });

  test('the archive offline: local matches, and the archive\'s earlier answers from the index, with the reason', async () => {
    current = readers.closed;
    const result = await search.search({ level: 'STUDY', keys: { PatientID: patientId } });
    assert.equal(result.archive.state, 'missing');
    assert.ok(result.archive.state === 'missing' && result.archive.reason === 'offline', JSON.stringify(result.archive));
    assert.deepEqual(new Set(result.matches.map((m) => m.StudyInstanceUID)), new Set([sharedStudy, localOnly[0]!.studyUid, cloudOnly[0]!.studyUid]));
  });

  test('the archive too slow: given up at the time limit, local matches answered', async () => {
    current = readers.slow;
    const result = await search.search({ level: 'PATIENT', keys: { PatientID: patientId } });
    assert.ok(result.archive.state === 'missing' && result.archive.reason === 'timeout', JSON.stringify(result.archive));
    assert.match(result.archive.message, /within 300 ms/);
    assert.equal(result.matches.length, 1);
  });

  test('federation off, or no archive: the index alone answers and nothing is asked', async () => {
    current = readers.azure;
    const asked = azure.requests.length;
    federation.enabled = false;
    try {
      const off = await search.search({ level: 'STUDY', keys: { PatientID: patientId } });
      assert.deepEqual(off.archive, { state: 'off', reason: 'disabled' });
      assert.equal(off.matches.length, 3);
    } finally {
      federation.enabled = true;
    }
    current = undefined;
    assert.deepEqual((await search.search({ level: 'STUDY', keys: {} })).archive, { state: 'off', reason: 'no-archive' });
    assert.equal(azure.requests.length, asked);
  });

  test('a bad key is refused before the archive is asked', async () => {
    current = readers.azure;
    const asked = azure.requests.length;
    await assert.rejects(search.search({ level: 'STUDY', keys: { StudyDate: 'yesterday' } }), InvalidMatchKeyError);
    await assert.rejects(search.search({ level: 'STUDY', keys: {}, limit: -1 }), RangeError);
    assert.equal(azure.requests.length, asked);
  });
});
