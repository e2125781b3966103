// The archive reader against real peers: Orthanc with its DICOMweb plugin as the archive (QIDO, WADO-RS
// streamed byte-identical into the archive as cached copies, metadata, no change feed), the Azure DICOM
// double with Entra ID sign-in and data partitions (search, retrieve, the change feed), and a dead upstream.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { ArchiveReader, ArchiveReadError, FEED_START, type ChangeFeedCursor } from '../../main/core/cloud/archive-reader.js';
import { jsonString } from '../../main/core/dicom/dicom-json-values.js';
import { createAuthProvider, type AuthProvider } from '../../main/core/forward/auth.js';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { Archive } from '../../main/core/store/archive.js';
import { queryArchive } from '../../main/core/store/query.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { EntraDouble } from '../doubles/entra.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { indexDb } from '../support/index-db.js';

const small = { rows: 8, columns: 8 } as const;
const none = createAuthProvider({ kind: 'none' });

async function collect(parts: AsyncIterable<{ body: NodeJS.ReadableStream; transferSyntax?: string }>) {
  const out: Array<{ bytes: Buffer; transferSyntax?: string }> = [];
  for await (const part of parts) {
    const chunks: Buffer[] = [];
    for await (const chunk of part.body) chunks.push(chunk as Buffer);
    out.push({ bytes: Buffer.concat(chunks), transferSyntax: part.transferSyntax });
  }
  return out;
}

async function rejectsWith(promise: Promise<unknown>, kind: string, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ArchiveReadError, String(error));
    assert.equal(error.kind, kind, error.message);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('Orthanc as the archive', () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let reader: ArchiveReader;
  const study = makeStudy({ series: 2, instancesPerSeries: 3, patientName: 'Prior^Patient', patientId: 'PRIOR-ORTHANC', studyDate: '20210310', modality: 'CT', ...small });
  const bySop = new Map(study.map((i) => [i.sopInstanceUid, i]));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-orthanc-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    for (const instance of study) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    reader = new ArchiveReader({ baseUrl: orthanc.dicomWebUrl, auth: none, name: 'orthanc' });
  });
  after(async () => {
    await reader?.close();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('QIDO-RS at study, series and instance level, with paging', async () => {
    const studies = await reader.search({ level: 'study', match: { PatientID: 'PRIOR-ORTHANC' }, timeoutMs: 10_000 });
    assert.deepEqual(studies.map((s) => jsonString(s, '0020000D')), [study[0]!.studyUid]);
    assert.equal(jsonString(studies[0]!, '00100010'), 'Prior^Patient');
    const series = await reader.search({ level: 'series', studyUid: study[0]!.studyUid });
    assert.deepEqual(series.map((s) => jsonString(s, '0020000E')).sort(), [...new Set(study.map((i) => i.seriesUid))].sort());
    const oneSeries = await reader.search({ level: 'instance', studyUid: study[0]!.studyUid, seriesUid: study[0]!.seriesUid });
    assert.equal(oneSeries.length, 3);
    const paged = await reader.search({ level: 'instance', studyUid: study[0]!.studyUid, pageSize: 4 });
    assert.deepEqual(paged.map((i) => jsonString(i, '00080018')).sort(), [...bySop.keys()].sort());
    assert.deepEqual(await reader.search({ level: 'study', match: { PatientID: 'NOBODY' } }), []);
  });

  test('WADO-RS of the study streams every instance byte-identical to what was stored', async () => {
    const parts = await collect(reader.retrieve({ studyUid: study[0]!.studyUid }, { timeoutMs: 10_000 }));
    assert.equal(parts.length, study.length);
    for (const part of parts) {
      const original = study.find((i) => i.buffer.equals(part.bytes));
      assert.ok(original, 'each part is one of the stored instances, byte for byte');
    }
    assert.ok(parts.every((p) => p.transferSyntax === undefined || p.transferSyntax === '1.2.840.10008.1.2.1'));
    const [one] = await collect(reader.retrieve({ studyUid: study[0]!.studyUid, seriesUid: study[4]!.seriesUid, sopInstanceUid: study[4]!.sopInstanceUid }));
    assert.ok(one?.bytes.equals(study[4]!.buffer));
    await rejectsWith(collect(reader.retrieve({ studyUid: '1.2.3.4.5.6.7' })), 'not-found', /HTTP 404/);
  });

  test('metadata of the study without pixel data', async () => {
    const datasets = await reader.metadata({ studyUid: study[0]!.studyUid });
    assert.equal(datasets.length, study.length);
    assert.ok(datasets.every((d) => jsonString(d, '00100020') === 'PRIOR-ORTHANC'));
    assert.ok(datasets.every((d) => d['7FE00010'] === undefined || d['7FE00010']?.Value === undefined), 'pixel data is not inline');
  });

  test('Orthanc has no change feed: reported as unsupported, not as a failure', async () => {
    const page = await reader.changeFeed({ limit: 10 });
    assert.equal(page.supported, false);
    assert.ok(!page.supported && page.status === 404, JSON.stringify(page));
    assert.equal((await reader.latestChange()).supported, false);
  });

  test('what is read lands in the index: QIDO answers as cloud rows, the stream as cached copies that are never queued', async () => {
    const data = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-cache-'));
    const { archive } = await Archive.open({ dataDir: data, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }), route: () => ['orthanc'] });
    try {
      archive.cloud.upsert('instance', await reader.search({ level: 'instance', studyUid: study[0]!.studyUid, includeFields: 'all' }));
      const [found] = queryArchive(indexDb(archive), { level: 'STUDY', keys: { PatientID: 'PRIOR-ORTHANC' } });
      assert.equal(found?.InstanceAvailability, 'NEARLINE');
      assert.equal(found?.NumberOfStudyRelatedInstances, study.length);
      for await (const part of reader.retrieve({ studyUid: study[0]!.studyUid })) {
        const result = await archive.ingest(part.body, { callingAe: 'ORTHANC', peer: orthanc.httpUrl, origin: 'cloud', expect: { studyInstanceUid: study[0]!.studyUid } });
        assert.equal(result.outcome, 'stored');
        assert.ok((await readFile(archive.paths.absolute(result.relativePath))).equals(bySop.get(result.header.sopInstanceUid)!.buffer));
      }
      const [cached] = queryArchive(indexDb(archive), { level: 'STUDY', keys: { PatientID: 'PRIOR-ORTHANC' } });
      assert.equal(cached?.InstanceAvailability, 'ONLINE');
      assert.equal((indexDb(archive).prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n, 0, 'nothing to send back');
    } finally {
      await archive.close();
      await rm(data, { recursive: true, force: true });
    }
  });
});

describe('the Azure DICOM double as the archive, with Entra ID sign-in and partitions', () => {
  let entra: EntraDouble;
  let azure: AzureDicomDouble;
  let reader: ArchiveReader;
  let auth: AuthProvider;
  const clientId = 'edge-reader';
  const clientSecret = 'reader-secret-value';
  const partition = 'clinic-a';
  let study: GeneratedInstance[];

  before(async () => {
    entra = await EntraDouble.start({ tokenLifetimeSeconds: 2 });
    entra.registerConfidentialClient({ clientId, secret: clientSecret });
    azure = await AzureDicomDouble.start({ auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId } });
    // The destination as settings hold it; the reader signs in the way forwarding does.
    const destination = settingsSchema.parse({
      destinations: [{ name: 'azure', archive: true, baseUrl: azure.partitionUrl(partition),
        auth: { kind: 'entra-client-secret', tenantId: entra.tenantId, clientId, clientSecret, authority: entra.authority } }],
    }).destinations[0]!;
    auth = createAuthProvider(destination.auth, {
      msal: { auth: { knownAuthorities: entra.msalAuth(clientId).knownAuthorities, authorityMetadata: entra.authorityMetadata(), cloudDiscoveryMetadata: entra.cloudDiscoveryMetadata() }, system: entra.msalSystem() },
    });
    reader = ArchiveReader.forDestination(destination, auth);
    study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'PRIOR-AZURE', ...small });
    for (const instance of study) azure.seedInstance(instance.buffer, partition);
    azure.seedInstance(makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'OTHER-PARTITION', ...small })[0]!.buffer);
  });
  after(async () => {
    await reader?.close();
    await azure?.stop();
    await entra?.stop();
  });

  test('search, retrieve and metadata in the partition, every request with a token', async () => {
    const studies = await reader.search({ level: 'study', match: { PatientID: 'PRIOR-AZURE' } });
    assert.deepEqual(studies.map((s) => jsonString(s, '0020000D')), [study[0]!.studyUid]);
    assert.deepEqual(await reader.search({ level: 'study', match: { PatientID: 'OTHER-PARTITION' } }), [], 'another partition is not searched');
    const parts = await collect(reader.retrieve({ studyUid: study[0]!.studyUid }));
    assert.deepEqual(parts.map((p) => p.bytes.toString('base64')).sort(), study.map((i) => i.buffer.toString('base64')).sort());
    assert.ok(parts.every((p) => p.transferSyntax === '1.2.840.10008.1.2.1'));
    assert.equal((await reader.metadata({ studyUid: study[0]!.studyUid })).length, 3);
    assert.ok(azure.requests.length >= 4 && azure.requests.every((r) => r.auth === 'ok' && r.partition === partition));
  });

  test('a token the archive rejects is renewed once, then an auth failure; reads work again once it is accepted', async () => {
    const authority = { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId };
    azure.setAuth({ ...authority, audience: 'https://some-other-resource' });
    try {
      const before = azure.requests.length;
      await rejectsWith(reader.search({ level: 'study' }), 'auth', /HTTP 401/);
      assert.deepEqual(azure.requests.slice(before).map((r) => r.auth), ['invalid', 'invalid'], 'the first try and one with a renewed token');
    } finally {
      azure.setAuth(authority);
    }
    assert.equal((await reader.search({ level: 'study', match: { PatientID: 'PRIOR-AZURE' } })).length, 1);
  });

  test('the partition\'s change feed: creates, a delete, latest, and a cursor that pages through it', async () => {
    const feed = await reader.changeFeed({ includeMetadata: true });
    assert.ok(feed.supported);
    assert.deepEqual(feed.value.map((e) => [e.sopInstanceUid, e.action, e.state]), study.map((i) => [i.sopInstanceUid, 'create', 'current']));
    assert.equal(jsonString(feed.value[0]!.metadata!, '00100020'), 'PRIOR-AZURE');
    assert.ok(feed.value.every((e) => e.partitionName === undefined));

    const gone = study[1]!;
    const token = await auth.authorization();
    const deleted = await fetch(`${azure.partitionUrl(partition)}/studies/${gone.studyUid}/series/${gone.seriesUid}/instances/${gone.sopInstanceUid}`, { method: 'DELETE', headers: { authorization: token! } });
    assert.equal(deleted.status, 204);

    const latest = await reader.latestChange({ includeMetadata: false });
    assert.ok(latest.supported);
    assert.deepEqual([latest.value?.sopInstanceUid, latest.value?.action, latest.value?.state], [gone.sopInstanceUid, 'delete', 'deleted']);

    const seen: Array<[string, string]> = [];
    let cursor: ChangeFeedCursor = FEED_START;
    for (let round = 0; round < 10; round++) {
      const batch = await reader.changesSince(cursor, { limit: 2, includeMetadata: false });
      assert.ok(batch.supported);
      seen.push(...batch.value.entries.map((e): [string, string] => [e.sopInstanceUid, e.action]));
      cursor = batch.value.cursor;
      if (batch.value.caughtUp) break;
    }
    assert.deepEqual(seen, [...study.map((i): [string, string] => [i.sopInstanceUid, 'create']), [gone.sopInstanceUid, 'delete']]);
    const after = await reader.changesSince(cursor, { limit: 2 });
    assert.ok(after.supported && after.value.entries.length === 0 && after.value.caughtUp, 'nothing new');
  });

  test('the service root feed holds every partition, naming the others', async () => {
    const root = new ArchiveReader({ baseUrl: azure.baseUrl, auth });
    try {
      const feed = await root.changeFeed({ includeMetadata: false, limit: 200 });
      assert.ok(feed.supported);
      assert.ok(feed.value.some((e) => e.partitionName === partition));
      assert.ok(feed.value.some((e) => e.partitionName === undefined), 'the default partition is not named');
    } finally {
      await root.close();
    }
  });

  test('the archive down: refused and reset connections are offline within the time limit', async () => {
    for (const mode of ['refuse', 'reset'] as const) {
      await azure.setFault({ kind: 'down', mode });
      try {
        const started = Date.now();
        await rejectsWith(reader.search({ level: 'study', timeoutMs: 3000 }), 'offline', /unreachable|no answer within 3000 ms|cut/);
        assert.ok(Date.now() - started < 3000 + 1000, `${mode}: answered within the time limit`);
        await rejectsWith(collect(reader.retrieve({ studyUid: study[0]!.studyUid }, { timeoutMs: 3000 })), 'offline', /./);
      } finally {
        await azure.clearFault();
      }
    }
    assert.equal((await reader.search({ level: 'study', match: { PatientID: 'PRIOR-AZURE' } })).length, 1, 'back once it is up');
  });
});
