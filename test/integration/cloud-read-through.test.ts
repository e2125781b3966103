// The clinic's archive through the whole appliance: federated QIDO-RS and read-through WADO-RS with Orthanc
// (its DICOMweb plugin) as the archive, and with the Azure DICOM double where the test counts the upstream's
// requests, cuts a retrieve mid-instance or watches for STOW. Modalities send with DCMTK storescu.
import { indexDb } from '../support/index-db.js';
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { asXmlSees, datasetFromXml, xmlParts } from '../support/native-xml.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../support/forward-harness.js';
import { freePort, requireTool, runOk, startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeInstance, NATIVE_TRANSFER_SYNTAXES } from '../support/instance.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/study.js';
import { makeInstanceInSyntax } from '../support/transfer-syntax.js';
import { logLines, startWebAppliance, type WebAppliance } from '../support/web-appliance.js';
import { holdCommits } from '../support/hold-commits.js';
import { startGateProxy, type GateProxy } from '../support/gate-proxy.js';
import type { IncomingMessage } from 'node:http';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { readInstanceInfo } from '../doubles/dicom-instance-info.js';
import { listenLoopback, type LoopbackServer } from '../doubles/http-server.js';
import { parseMediaType, readMultipartRelated } from '../doubles/multipart-related.js';

const small = { rows: 16, columns: 16 } as const;
const ANY_SYNTAX = 'multipart/related; type="application/dicom"; transfer-syntax=*';
const AVAILABILITY = '00080056';

type Json = Array<Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string }>>;

/** The parts of a WADO-RS multipart answer; rejects when the answer is cut short. */
async function parts(response: Response): Promise<Buffer[]> {
  assert.equal(response.status, 200, await response.clone().text());
  const boundary = parseMediaType(response.headers.get('content-type') ?? '')?.params.boundary;
  assert.ok(boundary, response.headers.get('content-type') ?? '');
  const out: Buffer[] = [];
  for await (const part of readMultipartRelated(response.body as unknown as AsyncIterable<Uint8Array>, boundary)) out.push(part.body);
  return out;
}

async function qido(w: WebAppliance, path: string): Promise<{ status: number; warning: string | null; body: Json }> {
  const response = await w.api(`/dicom-web${path}`, { headers: { accept: 'application/dicom+json' } });
  const text = await response.text();
  return { status: response.status, warning: response.headers.get('warning'), body: text ? (JSON.parse(text) as Json) : [] };
}

const value = (dataset: Json[number], tag: string) => dataset[tag]?.Value?.[0];

/** The UIDs of a Part 10 instance, as the double reads them. */
function instanceIds(bytes: Buffer): { studyUid: string; seriesUid: string; sopInstanceUid: string } {
  const info = readInstanceInfo(bytes);
  return { studyUid: info.studyUid!, seriesUid: info.seriesUid!, sopInstanceUid: info.sopUid! };
}

async function send(w: WebAppliance, dir: string, instances: GeneratedInstance[]): Promise<void> {
  const files = await writeInstances(await mkdtemp(join(dir, 'send-')), instances);
  await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(w.dimsePort), ...files], { timeoutMs: 60_000 });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

function sameSet(actual: Buffer[], expected: Buffer[], message: string): void {
  assert.deepEqual(actual.map(sha256).sort(), expected.map(sha256).sort(), message);
}

const localCount = (w: WebAppliance, studyUid: string) =>
  (indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE study_uid = ? AND local = 1').get(studyUid) as { n: number }).n;
const tempFiles = async (w: WebAppliance) => (await Promise.all(w.appliance.archive.paths.tempShards.map((d) => readdir(d)))).flat();

/** `answer`, or a failure once it has waited a minute (what a reader held up by the held commits, or listing, would see). */
async function unheld<T>(answer: Promise<T>, stuckMessage = 'the answer waited for the commits'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(stuckMessage)), 60_000)));
  return Promise.race([answer, stuck]).finally(() => clearTimeout(timer));
}

describe('Orthanc as the clinic\'s archive', { timeout: 180_000 }, () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let gate: GateProxy;
  let w: WebAppliance;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-read-through-orthanc-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    // Orthanc is reached through a proxy that passes everything on, unless a test makes it hold a request.
    const upstream = new URL(orthanc.dicomWebUrl);
    gate = await startGateProxy(upstream.origin);
    w = await startWebAppliance({
      settings: { destinations: [{ name: 'orthanc', baseUrl: `${gate.origin}${upstream.pathname}`, archive: true, retryBaseMs: 50, retryCapMs: 500 }] },
    });
  });
  after(async () => {
    await w?.stop();
    await gate?.close();
    await orthanc?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('an evicted study is found by QIDO as NEARLINE, and WADO-RS returns it byte-identical, from the archive', async () => {
    const study = makeStudy({ series: 2, instancesPerSeries: 2, patientId: 'EVICTED-1', patientName: 'Evicted^Patient', ...small });
    const studyUid = study[0]!.studyUid;
    await send(w, dir, study);
    const db = indexDb(w.appliance.archive);
    // Forwarded to the archive, and known to be there (marked as its deliveries are confirmed).
    await waitFor(() => (db.prepare("SELECT COUNT(*) AS n FROM instances WHERE study_uid = ? AND in_cloud = 1").get(studyUid) as { n: number }).n === study.length,
      () => JSON.stringify(db.prepare('SELECT destination, state, last_error FROM outbox WHERE study_uid = ?').all(studyUid)));
    const outboxBefore = db.prepare('SELECT sop_instance_uid, state FROM outbox WHERE study_uid = ? ORDER BY id').all(studyUid);
    // What the appliance stored (and forwarded) is what must come back.
    const stored = await Promise.all(study.map(async (i) => {
      const { path } = db.prepare('SELECT path FROM instances WHERE sop_instance_uid = ?').get(i.sopInstanceUid) as { path: string };
      return readFile(w.appliance.archive.paths.absolute(path));
    }));
    for (const instance of study) assert.ok((await w.appliance.archive.evictInstance(instance.sopInstanceUid)) > 0);
    assert.equal(localCount(w, studyUid), 0);

    const found = await qido(w, '/studies?PatientID=EVICTED-1');
    assert.equal(found.status, 200);
    assert.equal(found.warning, null, 'the archive answered');
    assert.deepEqual(found.body.map((s) => [value(s, '0020000D'), value(s, AVAILABILITY)]), [[studyUid, 'NEARLINE']]);
    const series = await qido(w, `/studies/${studyUid}/series`);
    assert.deepEqual(series.body.map((s) => value(s, AVAILABILITY)), ['NEARLINE', 'NEARLINE']);

    const got = await parts(await w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }));
    sameSet(got, stored, 'every instance, byte for byte as stored before eviction');
    // The answer went on as the archive's bytes arrived; the commits end on their own.
    await waitFor(() => localCount(w, studyUid) === study.length, () => `${localCount(w, studyUid)} of ${study.length} cached again`);
    assert.deepEqual((await qido(w, '/studies?PatientID=EVICTED-1')).body.map((s) => value(s, AVAILABILITY)), ['ONLINE']);
    // Cached data is never queued to go back: the outbox is as forwarding left it.
    assert.deepEqual(db.prepare('SELECT sop_instance_uid, state FROM outbox WHERE study_uid = ? ORDER BY id').all(studyUid), outboxBefore);
  });

  test('parts that name no transfer syntax (as Orthanc sends them) go on to the reader as they arrive, before they are committed', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'ORTHANC-STREAMED', ...small });
    const studyUid = study[0]!.studyUid;
    for (const instance of study) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    const release = holdCommits(w, study.map((i) => i.sopInstanceUid));
    try {
      const response = await unheld(w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }));
      const boundary = parseMediaType(response.headers.get('content-type') ?? '')?.params.boundary;
      const received: Array<{ headers: Record<string, string>; body: Buffer }> = [];
      for await (const part of readMultipartRelated(response.body as unknown as AsyncIterable<Uint8Array>, boundary!)) received.push(part);
      sameSet(received.map((p) => p.body), study.map((i) => i.buffer), 'the whole study, byte for byte');
      for (const part of received) assert.equal(part.headers['content-type'], `application/dicom; transfer-syntax=${NATIVE_TRANSFER_SYNTAXES.explicitLittle}`, 'the syntax read from its meta header');
      assert.equal(localCount(w, studyUid), 0, 'nothing committed yet');
    } finally {
      await release();
    }
    await waitFor(() => localCount(w, studyUid) === study.length, () => `${localCount(w, studyUid)} of ${study.length} committed`);
  });

  test('a study only in the archive: found by QIDO, described without its pixel data, and rendered, thumbnailed and framed on demand', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 4, patientId: 'ONLY-IN-ORTHANC', patientName: 'Prior^Elsewhere', studyDate: '20190101', ...small });
    const studyUid = study[0]!.studyUid;
    for (const instance of study) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    const found = await qido(w, '/studies?PatientID=ONLY-IN-ORTHANC');
    assert.deepEqual(found.body.map((s) => [value(s, '0020000D'), value(s, AVAILABILITY)]), [[studyUid, 'NEARLINE']]);
    const instances = await qido(w, `/studies/${studyUid}/instances`);
    assert.deepEqual(instances.body.map((i) => value(i, '00080018')).sort(), study.map((i) => i.sopInstanceUid).sort());

    const metadata = await w.api(`/dicom-web/studies/${studyUid}/metadata`, { headers: { accept: 'application/dicom+json' } });
    assert.equal(metadata.status, 200);
    const datasets = (await metadata.json()) as Json;
    assert.deepEqual(datasets.map((d) => value(d, '00080018')).sort(), study.map((i) => i.sopInstanceUid).sort());
    assert.ok(datasets.every((d) => (value(d, '00100020') as string) === 'ONLY-IN-ORTHANC'));
    const bulk = datasets.flatMap((d) => Object.values(d).map((e) => e.BulkDataURI).filter((u): u is string => u !== undefined));
    assert.ok(bulk.length > 0 && bulk.every((u) => u.startsWith(`${w.dicomWebUrl}/studies/${studyUid}/series/`)), `bulk data points here: ${bulk.slice(0, 2).join(', ')}`);
    assert.equal(localCount(w, studyUid), 0, 'no instance was fetched for the metadata');
    // A read of the study: its access time is recorded (cloud rows start with none).
    assert.ok((w.appliance.archive.cloud.studyLocation(studyUid)?.lastAccessAt ?? 0) > 0, 'the metadata read touched the study');

    const [first, second] = study as [GeneratedInstance, GeneratedInstance];
    const rendered = await w.api(`/dicom-web/studies/${studyUid}/series/${first.seriesUid}/instances/${first.sopInstanceUid}/rendered`, { headers: { accept: 'image/png' } });
    assert.equal(rendered.status, 200, await rendered.clone().text());
    assert.equal(rendered.headers.get('content-type'), 'image/png');
    assert.equal(localCount(w, studyUid), 1, 'the rendered instance, and only it, is here now');
    const frames = await w.api(`/dicom-web/studies/${studyUid}/series/${second.seriesUid}/instances/${second.sopInstanceUid}/frames/1`,
      { headers: { accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*' } });
    assert.equal((await parts(frames)).length, 1);
    // The bulk data the metadata points at: its instance is fetched when asked for.
    const bulkData = await w.api(new URL(bulk.find((u) => u.includes(study[2]!.sopInstanceUid))!).pathname, { headers: { accept: 'multipart/related; type="application/octet-stream"' } });
    assert.equal((await parts(bulkData)).length, 1);
    assert.equal(localCount(w, studyUid), 3);
    const thumbnail = await w.api(`/dicom-web/studies/${studyUid}/thumbnail`, { headers: { accept: 'image/jpeg' } });
    assert.equal(thumbnail.status, 200);
    assert.equal(thumbnail.headers.get('content-type'), 'image/jpeg');

    // The whole study: the three instances here go first, the fourth is fetched by itself; byte-identical.
    sameSet(await parts(await w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } })), study.map((i) => i.buffer), 'byte-identical');
    assert.equal(localCount(w, studyUid), study.length);
  });

  test('WADO-RS of a study nothing here has ever named streams at once; the archive lists it after, and nothing is kept before that', async () => {
    // No search first: the index knows nothing of the study, not even that the archive holds it.
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'WADO-NEVER-SEEN', ...small });
    const studyUid = study[0]!.studyUid;
    for (const instance of study) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    const isListing = (req: IncomingMessage) => req.method === 'GET' && (req.url ?? '').includes(studyUid) && /\/instances\?/.test(req.url ?? '');
    let openListing!: () => void;
    const listingHeld = new Promise<void>((resolve) => (openListing = resolve));
    let listingAsked!: () => void;
    const asked = new Promise<void>((resolve) => (listingAsked = resolve));
    gate.hold = (req) => {
      if (!isListing(req)) return undefined;
      listingAsked();
      return listingHeld;
    };
    try {
      // The whole answer comes while the listing is held (or not yet asked).
      const got = await unheld(w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }).then(parts), 'the answer waited for the listing');
      sameSet(got, study.map((i) => i.buffer), 'the whole study, byte for byte');
      await unheld(asked, 'the archive was never asked to list the study');
      assert.equal(localCount(w, studyUid), 0, 'nothing kept here before the listing is in');
    } finally {
      openListing();
      gate.hold = undefined;
    }
    await waitFor(() => localCount(w, studyUid) === study.length, () => `${localCount(w, studyUid)} of ${study.length} committed`);
  });

  test('an instance neither here nor in the archive is 404', async () => {
    const response = await w.api('/dicom-web/studies/1.2.826.0.1.3680043.99.1', { headers: { accept: ANY_SYNTAX } });
    assert.equal(response.status, 404);
  });
});

describe('the Azure DICOM double as the archive: counted requests, a cut, no STOW, offline', { timeout: 180_000 }, () => {
  let dir: string;
  let azure: AzureDicomDouble;
  let silent: LoopbackServer;
  let w: WebAppliance;
  const destination = (baseUrl: string) => ({ name: 'azure', baseUrl, archive: true, retryBaseMs: 50, retryCapMs: 500 });
  /** The double nulls the preamble, as the Azure DICOM service does; the rest is as stored. */
  const afterPreamble = (buffers: Buffer[]) => buffers.map((b) => b.subarray(128));

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-read-through-azure-'));
    azure = await AzureDicomDouble.start();
    silent = await listenLoopback(() => new Promise<void>(() => undefined));
    w = await startWebAppliance({ settings: { destinations: [destination(azure.baseUrl)] } });
  });
  after(async () => {
    await w?.stop();
    await azure?.stop();
    await silent?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('five concurrent WADO-RS requests for one study only in the archive cause one upstream fetch', async () => {
    const study = makeStudy({ series: 2, instancesPerSeries: 3, patientId: 'FIVE-READERS', ...small });
    for (const instance of study) azure.seedInstance(instance.buffer);
    // The archive takes its time: every reader arrives while the first one's fetch is under way.
    await azure.setFault({ kind: 'slow-retrieve', ms: 500, times: 1 });
    const before = azure.requests.length;
    const answers = await Promise.all(Array.from({ length: 5 }, () =>
      w.api(`/dicom-web/studies/${study[0]!.studyUid}`, { headers: { accept: ANY_SYNTAX } }).then(parts)));
    for (const answer of answers) sameSet(afterPreamble(answer), afterPreamble(study.map((i) => i.buffer)), 'every reader gets the whole study');
    const upstream = azure.requests.slice(before);
    assert.equal(upstream.filter((r) => r.kind === 'retrieve').length, 1, JSON.stringify(upstream.map((r) => [r.kind, r.path])));
    assert.equal(upstream.filter((r) => r.kind === 'search').length, 1, 'one listing of the study');
  });

  test('the upstream cut mid-fetch: no partial instance is left, and the next request completes the study', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 4, patientId: 'CUT-SHORT', ...small });
    const studyUid = study[0]!.studyUid;
    for (const instance of study) azure.seedInstance(instance.buffer);
    await azure.setFault({ kind: 'cut-retrieve', afterParts: 2, times: 1 });
    await assert.rejects(w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }).then(parts), 'the answer is cut short too');
    await waitFor(() => azure.activeFault === undefined, () => 'the cut retrieve was made');
    // The reader hears of the cut as the bytes stop, while the whole instances before it may still be committing.
    await waitFor(async () => localCount(w, studyUid) === 2 && (await tempFiles(w)).length === 0, () => `${localCount(w, studyUid)} instances committed`);
    assert.equal(localCount(w, studyUid), 2, 'the whole instances before the cut');
    assert.deepEqual(await tempFiles(w), [], 'no partial file');
    const files = (await readdir(join(w.appliance.archive.paths.root, studyUid), { recursive: true })).filter((f) => String(f).endsWith('.dcm'));
    assert.equal(files.length, 2);
    for (const file of files) {
      const bytes = await readFile(join(w.appliance.archive.paths.root, studyUid, String(file)));
      assert.ok(study.some((i) => i.buffer.subarray(128).equals(bytes.subarray(128))), `${String(file)} is a whole instance`);
    }
    assert.deepEqual((await qido(w, `/studies?StudyInstanceUID=${studyUid}`)).body.map((s) => value(s, AVAILABILITY)), ['NEARLINE']);

    const before = azure.requestsOf('retrieve').length;
    sameSet(afterPreamble(await parts(await w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }))),
      afterPreamble(study.map((i) => i.buffer)), 'the whole study');
    assert.equal(azure.requestsOf('retrieve').length - before, 2, 'only the two missing instances were fetched');
    assert.equal(localCount(w, studyUid), study.length);
  });

  test('the reader that starts a fetch gets each instance as its bytes arrive, before it is committed here', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'STREAMED-ON', ...small });
    const studyUid = study[0]!.studyUid;
    for (const instance of study) azure.seedInstance(instance.buffer);
    // Every instance's commit waits behind its lock until the reader has the whole answer.
    const release = holdCommits(w, study.map((i) => i.sopInstanceUid));
    try {
      const received = await unheld(w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }).then(parts));
      sameSet(afterPreamble(received), afterPreamble(study.map((i) => i.buffer)), 'the whole study, as the archive sent it');
      assert.equal(localCount(w, studyUid), 0, 'nothing committed yet');
    } finally {
      await release();
    }
    await waitFor(() => localCount(w, studyUid) === study.length, () => `${localCount(w, studyUid)} of ${study.length} committed`);
    assert.deepEqual(await tempFiles(w), [], 'no file left behind');
    const before = azure.requestsOf('retrieve').length;
    sameSet(afterPreamble(await parts(await w.api(`/dicom-web/studies/${studyUid}`, { headers: { accept: ANY_SYNTAX } }))),
      afterPreamble(study.map((i) => i.buffer)), 'then read from here');
    assert.equal(azure.requestsOf('retrieve').length, before, 'without asking the archive again');
  });

  test('the syntax a client asks for: converted when we can, 406 when we cannot, before anything is sent', async () => {
    const implicit = makeInstance({ transferSyntax: NATIVE_TRANSFER_SYNTAXES.implicitLittle, ...small });
    azure.seedInstance(implicit);
    const { studyUid, seriesUid, sopInstanceUid } = instanceIds(implicit);
    const plain = await w.api(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${sopInstanceUid}`,
      { headers: { accept: 'multipart/related; type="application/dicom"' } });
    const [converted] = await parts(plain);
    assert.ok(converted && converted.includes(Buffer.from('1.2.840.10008.1.2.1')), 'converted to Explicit VR Little Endian');

    const rle = await makeInstanceInSyntax(await mkdtemp(join(dir, 'rle-')), 'rle', small);
    azure.seedInstance(await readFile(rle.path));
    const decoded = await parts(await w.api(`/dicom-web/studies/${rle.studyUid}`, { headers: { accept: 'multipart/related; type="application/dicom"' } }));
    assert.ok(decoded[0]?.includes(Buffer.from('1.2.840.10008.1.2.1')), 'decoded to Explicit VR Little Endian');
    const refused = await w.api(`/dicom-web/studies/${rle.studyUid}`,
      { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' } });
    assert.equal(refused.status, 406, await refused.text());
    const any = await parts(await w.api(`/dicom-web/studies/${rle.studyUid}`, { headers: { accept: ANY_SYNTAX } }));
    assert.equal(any.length, 1, 'as stored, on request');
  });

  test('metadata of a study only in the archive is answered without fetching its pixel data', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'METADATA-ONLY', ...small });
    for (const instance of study) azure.seedInstance(instance.buffer);
    const before = azure.requests.length;
    const response = await w.api(`/dicom-web/studies/${study[0]!.studyUid}/metadata`, { headers: { accept: 'application/dicom+json' } });
    assert.equal(response.status, 200);
    const datasets = (await response.json()) as Json;
    assert.deepEqual(datasets.map((d) => value(d, '00080018')).sort(), study.map((i) => i.sopInstanceUid).sort());
    const upstream = azure.requests.slice(before);
    assert.deepEqual(upstream.map((r) => r.kind), ['metadata'], 'no WADO-RS retrieve upstream');
    assert.equal(localCount(w, study[0]!.studyUid), 0);
    // The same answer as DICOM XML (PS3.18 Table 10.4.4-1), one document per instance.
    const xml = await w.api(`/dicom-web/studies/${study[0]!.studyUid}/metadata`, { headers: { accept: 'multipart/related; type="application/dicom+xml"' } });
    assert.equal(xml.status, 200);
    const bySop = new Map(datasets.map((d) => [value(d, '00080018'), d]));
    const documents = (await xmlParts(xml)).map((d) => datasetFromXml(d));
    assert.equal(documents.length, study.length);
    for (const dataset of documents) assert.deepEqual(dataset, asXmlSees(bySop.get(dataset['00080018']!.Value![0])! as DicomJson));
    assert.equal(localCount(w, study[0]!.studyUid), 0);
  });

  test('cached data is never sent back: the archive receives STOW only for what the clinic acquired', async () => {
    const acquired = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'ACQUIRED-HERE', ...small });
    await send(w, dir, acquired);
    await waitFor(() => azure.storeRequests().some((r) => r.instances.some((i) => i.sopUid === acquired[0]!.sopInstanceUid)),
      () => 'the acquired instance was forwarded');
    const stowed = azure.storeRequests().flatMap((r) => r.instances.map((i) => i.sopUid));
    assert.deepEqual(stowed, [acquired[0]!.sopInstanceUid], 'only the acquired instance, none of the fetched ones');
    const queued = indexDb(w.appliance.archive).prepare('SELECT COUNT(*) AS n FROM outbox o JOIN instances i USING (sop_instance_uid) WHERE i.calling_ae = ?').get('azure') as { n: number };
    assert.equal(queued.n, 0, 'fetched instances have no outbox rows');
  });

  test('the archive offline or slow: QIDO answers the local results with a Warning, within the time limit', async () => {
    const here = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'OFFLINE-QIDO', ...small });
    await send(w, dir, here);
    const settings = (await (await w.api('/api/settings')).json()) as Record<string, any>;
    const closed = `http://127.0.0.1:${await freePort()}/v2`;
    for (const [baseUrl, reason] of [[closed, 'offline'], [`${silent.origin}/v2`, 'timeout']] as const) {
      settings.destinations = [destination(baseUrl)];
      settings.cloud = { ...settings.cloud, federation: { enabled: true, timeoutMs: 1000 } };
      const put = await w.api('/api/settings', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) });
      assert.equal(put.status, 200, await put.text());
      const started = Date.now();
      const answer = await qido(w, '/studies?PatientID=OFFLINE-QIDO');
      const elapsed = Date.now() - started;
      assert.equal(answer.status, 200);
      assert.deepEqual(answer.body.map((s) => [value(s, '0020000D'), value(s, AVAILABILITY)]), [[here[0]!.studyUid, 'ONLINE']]);
      assert.match(answer.warning ?? '', new RegExp(`^299 dicom-edge "The archive's results are missing \\(${reason}\\)`));
      assert.ok(elapsed < 1000 + 5000, `answered in ${elapsed} ms with a 1000 ms limit`);
      await waitFor(async () => (await logLines(w)).some((l) => l.event === 'qido-archive-missing' && l.reason === reason), () => `no qido-archive-missing line for ${reason}`);
      const warned = (await logLines(w)).filter((l) => l.level === 40 && l.reason === reason && /archive-missing/.test(String(l.event)));
      assert.deepEqual(warned.map((l) => l.event), ['qido-archive-missing'], 'one warning per QIDO, with the peer');
      assert.match(String(warned[0]!.peer), /^127\.0\.0\.1$/);
    }
  });
});
