// Read-through retrieve (cloud/read-through.ts) against the Azure DICOM double, which counts the requests it
// gets and can die mid-retrieve: one upstream fetch shared by concurrent readers, instances handed out as
// they commit, a cut fetch that leaves only whole instances and is completed by the next read, and nothing
// ever sent back. Real peers (Orthanc) are in test/integration/cloud-read-through.test.ts.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { readdir, readFile, rm } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { ArchiveReader, ArchiveReadError } from '../../main/core/cloud/archive-reader.js';
import { ReadThrough, type InstanceLocation } from '../../main/core/cloud/read-through.js';
import { createAuthProvider } from '../../main/core/forward/auth.js';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { instanceMetadata } from '../doubles/dicom-metadata.js';
import { listenLoopback, sendJson, type LoopbackServer } from '../doubles/http-server.js';
import { buildMultipartRelated } from '../doubles/multipart-related.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { readInstanceInfo } from '../doubles/dicom-instance-info.js';
import { waitFor } from '../support/forward-harness.js';
import { watchClientSockets } from '../support/net.js';

const silent = pino({ level: 'silent' });
const small = { rows: 8, columns: 8 } as const;

/** The double sanitizes the preamble (as the Azure DICOM service does); everything after it is as stored. */
const afterPreamble = (bytes: Buffer) => bytes.subarray(128);

const instanceUid = (bytes: Buffer) => readInstanceInfo(bytes).sopUid!;

async function collect(instances: AsyncIterable<InstanceLocation>): Promise<InstanceLocation[]> {
  const out: InstanceLocation[] = [];
  for await (const instance of instances) out.push(instance);
  return out;
}

describe('read-through retrieve from the archive', () => {
  let azure: AzureDicomDouble;
  let reader: ArchiveReader;
  let dir: string;
  let archive: Archive;
  let readThrough: ReadThrough;
  let study: GeneratedInstance[];

  const retrieves = () => azure.requestsOf('retrieve');
  const outboxRows = () => (indexDb(archive).prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n;
  const tempFiles = async () => (await Promise.all(archive.paths.tempShards.map((d) => readdir(d)))).flat();
  const localUids = () => new Set(readThrough.known({ studyUid: study[0]!.studyUid }).filter((i) => i.local).map((i) => i.sopInstanceUid));

  before(async () => {
    azure = await AzureDicomDouble.start();
    reader = new ArchiveReader({ baseUrl: azure.baseUrl, auth: createAuthProvider({ kind: 'none' }), name: 'azure' });
  });
  after(async () => {
    await reader?.close();
    await azure?.stop();
  });
  beforeEach(async () => {
    azure.reset();
    await azure.clearFault();
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-read-through-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: silent, route: () => ['azure'] }));
    readThrough = new ReadThrough({ archive, reader: () => reader, logger: silent });
    study = makeStudy({ series: 2, instancesPerSeries: 3, patientId: 'CLOUD-ONLY', ...small });
    for (const instance of study) azure.seedInstance(instance.buffer);
  });
  afterEach(async () => {
    await readThrough.close();
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  /**
   * Reads a study's retrieve, every part live, failing with `stuckMessage` if it does not finish in 60 s. Once the
   * whole study is in, `whole` runs (or, with 'stop', the reading stops there).
   */
  async function liveParts(studyUid: string, stuckMessage: string, whole: (() => void) | 'stop'): Promise<Buffer[]> {
    const received: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(stuckMessage)), 60_000)));
    const streamed = (async () => {
      for await (const item of readThrough.stream({ studyUid }, { accepts: () => true })) {
        assert.ok('live' in item, 'every instance as it arrives');
        const chunks: Buffer[] = [];
        for await (const chunk of item.live.body) chunks.push(chunk);
        received.push(Buffer.concat(chunks));
        if (received.length !== study.length) continue;
        if (whole === 'stop') break;
        whole();
      }
    })();
    await Promise.race([streamed, stuck]).finally(() => clearTimeout(timer));
    return received;
  }

  /**
   * Reads a study's retrieve live to the end, counting its bytes; returns the bytes read, and how many the reader
   * had when each ingest started.
   */
  async function readLiveCountingIngests(studyUid: string): Promise<{ given: number; givenAtIngest: number[]; givenAtListing: number[] }> {
    let given = 0;
    const givenAtIngest: number[] = [];
    const givenAtListing: number[] = [];
    const ingest = archive.ingest.bind(archive);
    archive.ingest = (source, context) => {
      givenAtIngest.push(given);
      return ingest(source, context);
    };
    const search = reader.search.bind(reader);
    reader.search = (query) => {
      givenAtListing.push(given);
      return search(query);
    };
    try {
      for await (const item of readThrough.stream({ studyUid }, { accepts: () => true })) {
        assert.ok('live' in item, 'every part given live');
        for await (const chunk of item.live.body) given += chunk.length;
      }
    } finally {
      archive.ingest = ingest;
      reader.search = search;
    }
    return { given, givenAtIngest, givenAtListing };
  }

  /** Holds the archive's listings (QIDO of a scope's instances) until `release`; `asked` once one was asked for. */
  function holdListing(): { asked: Promise<void>; release(): void; restore(): void } {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let ask!: () => void;
    const asked = new Promise<void>((resolve) => (ask = resolve));
    const search = reader.search.bind(reader);
    reader.search = async (query) => {
      ask();
      await held;
      return search(query);
    };
    return { asked, release, restore: () => {
      release();
      reader.search = search;
    } };
  }

  /** Waits until every instance of `parts` is kept here, checks each byte for byte, and that no temp file is left. */
  async function assertAllKept(parts: readonly GeneratedInstance[]): Promise<void> {
    const studyUid = parts[0]!.studyUid;
    const kept = () => readThrough.known({ studyUid }).filter((i) => i.local).length;
    await waitFor(() => kept() === parts.length, () => `${kept()} of ${parts.length} committed`);
    for (const original of parts) {
      const instance = readThrough.known({ studyUid }).find((i) => i.sopInstanceUid === original.sopInstanceUid)!;
      assert.ok(afterPreamble(await readFile(archive.paths.absolute(instance.path))).equals(afterPreamble(original.buffer)), 'stored byte for byte');
    }
    await waitFor(async () => (await tempFiles()).length === 0, () => 'no spool or temp file left');
  }

  test('a study only in the archive: listed as cloud rows, fetched in one request, each instance handed out once committed, never queued', async () => {
    const studyUid = study[0]!.studyUid;
    assert.equal(readThrough.needsArchive({ studyUid }), true);
    const seen: InstanceLocation[] = [];
    for await (const instance of readThrough.retrieve({ studyUid })) {
      // Handed out only once committed: its file is complete and the index says it is here.
      const original = study.find((i) => i.sopInstanceUid === instance.sopInstanceUid)!;
      assert.ok(afterPreamble(await readFile(archive.paths.absolute(instance.path))).equals(afterPreamble(original.buffer)));
      assert.equal(instance.local, true);
      seen.push(instance);
    }
    assert.deepEqual(seen.map((i) => i.sopInstanceUid).sort(), study.map((i) => i.sopInstanceUid).sort());
    assert.deepEqual(azure.requests.map((r) => r.kind).sort(), ['retrieve', 'search'], 'one listing, one retrieve of the whole study');
    assert.equal(outboxRows(), 0, 'nothing queued to be sent back');
    assert.equal(azure.storeRequests().length, 0, 'the archive received no STOW');
    assert.equal(readThrough.needsArchive({ studyUid }), false);
    const [match] = archive.reads.query({ level: 'STUDY', keys: { StudyInstanceUID: studyUid } });
    assert.equal(match?.InstanceAvailability, 'ONLINE');

    // A later read of what is here now is answered from here.
    const again = await collect(readThrough.retrieve({ studyUid }));
    assert.equal(again.length, study.length);
    assert.equal(azure.requests.length, 2, 'no further upstream request');
  });

  test('the archive\'s bytes go to the ingest handed over (batches), so the spool keeps each head without a copy', async () => {
    const studyUid = study[0]!.studyUid;
    const kinds = new Set<string>();
    const ingest = archive.ingest.bind(archive);
    archive.ingest = (source, context) => ingest((async function* seen() {
      for await (const item of source as AsyncIterable<unknown>) {
        kinds.add(Array.isArray(item) ? 'batch' : 'chunk');
        yield item as Buffer;
      }
    })(), context);
    const seen = await collect(readThrough.retrieve({ studyUid }));
    assert.equal(seen.length, study.length);
    assert.deepEqual([...kinds], ['batch'], 'every item a batch the spool may keep as it is');
    for (const instance of seen) {
      const original = study.find((i) => i.sopInstanceUid === instance.sopInstanceUid)!;
      assert.ok(afterPreamble(await readFile(archive.paths.absolute(instance.path))).equals(afterPreamble(original.buffer)));
    }
  });

  /** What a federated search leaves in the index: the study, with the number of instances the archive reported. */
  const foundByQido = (studyUid: string) =>
    archive.cloud.upsert('study', [{ '0020000D': { vr: 'UI', Value: [studyUid] }, '00201208': { vr: 'IS', Value: [study.length] } }]);

  test('a study found in the archive but not listed: its bytes stream to the reader while the archive lists it', async () => {
    const studyUid = study[0]!.studyUid;
    foundByQido(studyUid);
    const listing = holdListing();
    try {
      // Once the last part is in, the answer is whole while the listing is still held.
      const received = await liveParts(studyUid, 'the retrieve waited for the listing', () => listing.release());
      assert.deepEqual(received.map(afterPreamble).map((b) => b.toString('base64')).sort(),
        study.map((i) => afterPreamble(i.buffer).toString('base64')).sort(), 'every instance, byte for byte');
    } finally {
      listing.restore();
    }
    await waitFor(() => localUids().size === study.length, () => `${localUids().size} of ${study.length} committed`);
    assert.equal(outboxRows(), 0, 'nothing queued to be sent back');
  });

  test('the reader given the bytes live does not wait for the ingest to take them; the ingest follows, exact and durable', async () => {
    const studyUid = study[0]!.studyUid;
    // The ingest takes nothing until the reader has the whole answer.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const ingest = archive.ingest.bind(archive);
    archive.ingest = (source, context) => ingest((async function* held() {
      await gate;
      yield* source as AsyncIterable<readonly Buffer[]>;
    })(), context);
    try {
      const received = await liveParts(studyUid, 'the reader waited for the ingest', 'stop');
      assert.deepEqual(received.map(afterPreamble).map((b) => b.toString('base64')).sort(),
        study.map((i) => afterPreamble(i.buffer).toString('base64')).sort(), 'every instance, byte for byte');
      assert.equal(localUids().size, 0, 'nothing committed while the ingest held its bytes');
    } finally {
      open();
    }
    await waitFor(() => localUids().size === study.length, () => `${localUids().size} of ${study.length} committed`);
    for (const instance of readThrough.known({ studyUid })) {
      const original = study.find((i) => i.sopInstanceUid === instance.sopInstanceUid)!;
      assert.ok(afterPreamble(await readFile(archive.paths.absolute(instance.path))).equals(afterPreamble(original.buffer)), 'stored byte for byte');
    }
    assert.deepEqual(await tempFiles(), [], 'no temp file left');
  });

  test('a part the reader declines mid-way comes to it again once committed, once; the fetch goes on without it', async () => {
    // Instances of 128 KB, so each part comes in several chunks and the fetch waits on the reader between them.
    const large = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'DECLINED', rows: 256, columns: 256 });
    for (const instance of large) azure.seedInstance(instance.buffer);
    const studyUid = large[0]!.studyUid;
    const live: Buffer[] = [];
    const committed: InstanceLocation[] = [];
    let declinedOne = false;
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the fetch waited for the reader on a declined part')), 60_000)));
    const streamed = (async () => {
      for await (const item of readThrough.stream({ studyUid }, { accepts: () => true })) {
        if ('instance' in item) {
          committed.push(item.instance);
          continue;
        }
        if (!declinedOne) {
          // The first part: one chunk taken, then declined, its body never read again nor left.
          declinedOne = true;
          await item.live.body[Symbol.asyncIterator]().next();
          item.live.decline();
          continue;
        }
        const chunks: Buffer[] = [];
        for await (const chunk of item.live.body) chunks.push(chunk);
        live.push(Buffer.concat(chunks));
      }
    })();
    await Promise.race([streamed, stuck]).finally(() => clearTimeout(timer));
    assert.equal(live.length, large.length - 1, 'every other part as it arrived');
    assert.equal(committed.length, 1, 'the declined one, from its commit, once');
    const uids = [...live.map((bytes) => instanceUid(bytes)), ...committed.map((i) => i.sopInstanceUid)];
    assert.deepEqual(uids.sort(), large.map((i) => i.sopInstanceUid).sort(), 'each instance once');
    for (const bytes of live) assert.ok(large.some((i) => afterPreamble(i.buffer).equals(afterPreamble(bytes))), 'a live part is whole');
    const original = large.find((i) => i.sopInstanceUid === committed[0]!.sopInstanceUid)!;
    assert.ok(afterPreamble(await readFile(archive.paths.absolute(committed[0]!.path))).equals(afterPreamble(original.buffer)), 'kept whole');
    assert.equal(retrieves().length, 1, 'one fetch');
  });

  test('with no live reader (a prefetch, C-MOVE followers), the bytes read ahead of the ingest stay within the lag budget, and the whole study is kept', async () => {
    // Instances of 128 KB, so the answer comes in many chunks.
    const large = makeStudy({ series: 1, instancesPerSeries: 8, patientId: 'LAG', rows: 256, columns: 256 });
    for (const instance of large) azure.seedInstance(instance.buffer);
    const studyUid = large[0]!.studyUid;
    const budget = 2 * large[0]!.buffer.length;
    await readThrough.close();
    readThrough = new ReadThrough({ archive, reader: () => reader, logger: silent, ingestLagBytes: budget });
    // What the fetch has read of the archive's answer, and what the ingests have taken, at every chunk.
    let pulled = 0;
    let taken = 0;
    let worst = 0;
    let largestChunk = 0;
    const retrieve = reader.retrieve.bind(reader);
    reader.retrieve = (target, options) => (async function* counted() {
      for await (const part of retrieve(target, options)) {
        yield { ...part, body: Readable.from((async function* () {
          for await (const chunk of part.body) {
            pulled += (chunk as Buffer).length;
            largestChunk = Math.max(largestChunk, (chunk as Buffer).length);
            worst = Math.max(worst, pulled - taken);
            yield chunk as Buffer;
          }
        })(), { highWaterMark: 0 }) }; // pulled as the fetch reads, not read ahead by this wrapper
      }
    })();
    // The ingests take nothing until the reader has stopped getting bytes for a while.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const ingest = archive.ingest.bind(archive);
    archive.ingest = (source, context) => ingest((async function* held() {
      await gate;
      for await (const batch of source as AsyncIterable<readonly Buffer[]>) {
        for (const chunk of batch) taken += chunk.length;
        yield batch;
      }
    })(), context);
    const total = large.reduce((sum, i) => sum + i.buffer.length, 0);
    try {
      const streamed = (async () => {
        for await (const _ of readThrough.retrieve({ studyUid })) { /* each instance once committed */ }
      })();
      // Without a bound the whole answer would be read ahead; with it, reading stops short of the end until the ingests take.
      await waitFor(() => pulled >= budget, () => `${pulled} bytes read`);
      const stalled = setTimeout(open, 1000);
      await streamed;
      clearTimeout(stalled);
    } finally {
      open();
      reader.retrieve = retrieve;
    }
    const kept = () => readThrough.known({ studyUid }).filter((i) => i.local).length;
    await waitFor(() => kept() === large.length, () => `${kept()} of ${large.length} committed`);
    // A chunk may pass the budget, and this count runs one chunk ahead of the fetch (socket reads are larger under load).
    assert.ok(worst <= budget + 2 * largestChunk, `read ${worst} bytes ahead of the ingests, budget ${budget}, chunks up to ${largestChunk}, study ${total}`);
    assert.ok(worst < total, 'never the whole study ahead');
  });

  test('a live reader gets the whole answer before any part is ingested or the study is listed; the parts are then kept from their spool files, and none is left', async () => {
    // Nothing here has named the study: the fetch asks for all of it at once, and lists it at the archive later.
    const parts = makeStudy({ series: 1, instancesPerSeries: 6, patientId: 'SPOOLED', rows: 128, columns: 128 });
    for (const instance of parts) azure.seedInstance(instance.buffer);
    const { given, givenAtIngest, givenAtListing } = await readLiveCountingIngests(parts[0]!.studyUid);
    const total = parts.reduce((sum, i) => sum + i.buffer.length, 0);
    assert.equal(given, total, 'the reader got every byte of the archive\'s parts');
    assert.equal(givenAtIngest[0], total, 'no part was ingested before the reader had the whole answer');
    await assertAllKept(parts);
    assert.deepEqual(givenAtListing, [total], 'listed once, after the reader had the whole answer');
  });

  test('a reader that follows a live one gets each part from its spool file, each once, and is done with the answer, before any commit', async () => {
    const parts = makeStudy({ series: 1, instancesPerSeries: 6, patientId: 'SPOOL-FOLLOW', rows: 128, columns: 128 });
    for (const instance of parts) azure.seedInstance(instance.buffer);
    const studyUid = parts[0]!.studyUid;
    const committed = () => readThrough.known({ studyUid }).filter((i) => i.local).length;
    const bytesOf = async (body: AsyncIterable<Buffer>) => {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(chunk);
      return Buffer.concat(chunks);
    };
    // The first reader takes its first part and stops there: nothing can be ingested or committed meanwhile.
    const first = readThrough.stream({ studyUid }, { accepts: () => true })[Symbol.asyncIterator]();
    const firstPart = await first.next();
    assert.ok(!firstPart.done && 'live' in firstPart.value);
    const second = readThrough.stream({ studyUid }, { accepts: () => true })[Symbol.asyncIterator]();
    const fromSecond: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the second reader waited for the commits')), 60_000)));
    try {
      while (fromSecond.length < parts.length) {
        const next = await Promise.race([second.next(), stuck]);
        assert.ok(!next.done && 'live' in next.value, 'each part from its spool file');
        fromSecond.push(await bytesOf(next.value.live.body));
      }
    } finally {
      clearTimeout(timer);
    }
    assert.equal(committed(), 0, 'nothing committed yet');
    assert.deepEqual(fromSecond.map(afterPreamble).map((b) => b.toString('base64')).sort(),
      parts.map((i) => afterPreamble(i.buffer).toString('base64')).sort(), 'every instance, byte for byte');
    // The first reader reads on. The listing at the archive is held, so nothing can commit; the second reader has
    // every part of the whole answer and is done all the same, with no instance twice.
    const listing = holdListing();
    try {
      await bytesOf(firstPart.value.live.body);
      for (let next = await first.next(); !next.done; next = await first.next()) {
        if ('live' in next.value) await bytesOf(next.value.live.body);
      }
      const end = await Promise.race([second.next(), new Promise((resolve) => setTimeout(() => resolve('still waiting'), 60_000))]);
      assert.deepEqual(end, { done: true, value: undefined }, 'the second reader is done before the commits');
      assert.equal(committed(), 0, 'nothing committed while the listing is held');
    } finally {
      listing.restore();
    }
    await assertAllKept(parts);
  });

  test('the archive cuts a live read: a reader that follows it gets the whole parts, then the same failure', async () => {
    const parts = makeStudy({ series: 1, instancesPerSeries: 5, patientId: 'SPOOL-CUT', rows: 128, columns: 128 });
    for (const instance of parts) azure.seedInstance(instance.buffer);
    const studyUid = parts[0]!.studyUid;
    // Two whole parts, then the answer breaks off once the test lets it.
    let cut!: () => void;
    const cutNow = new Promise<void>((resolve) => (cut = resolve));
    const retrieve = reader.retrieve.bind(reader);
    reader.retrieve = async function* cutting(target, options) {
      let given = 0;
      for await (const part of retrieve(target, options)) {
        if (given++ === 2) {
          await cutNow;
          throw new ArchiveReadError('offline', 'the connection was cut mid-way (test)', { url: 'test', retryable: true });
        }
        yield part;
      }
    };
    try {
      const first = readThrough.stream({ studyUid }, { accepts: () => true })[Symbol.asyncIterator]();
      const firstPart = await first.next();
      assert.ok(!firstPart.done && 'live' in firstPart.value);
      const firstBody = firstPart.value.live.body;
      const fromSecond: string[] = [];
      const second = (async () => {
        for await (const item of readThrough.stream({ studyUid }, { accepts: () => true })) {
          assert.ok('live' in item, 'whole parts from their spool files');
          const chunks: Buffer[] = [];
          for await (const chunk of item.live.body) chunks.push(chunk);
          fromSecond.push(instanceUid(Buffer.concat(chunks)));
        }
      })();
      await waitFor(() => fromSecond.length === 2, () => `${fromSecond.length} of the 2 whole parts reached the second reader`);
      cut();
      const offline = (error: unknown) => error instanceof ArchiveReadError && error.kind === 'offline';
      await assert.rejects(second, offline, 'the second reader is not done without the rest');
      await assert.rejects((async () => {
        for await (const _ of firstBody) { /* read on */ }
        for (let next = await first.next(); !next.done; next = await first.next()) {
          if ('live' in next.value) for await (const _ of next.value.live.body) { /* read on */ }
        }
      })(), offline);
      assert.deepEqual(fromSecond.sort(), parts.slice(0, 2).map((i) => i.sopInstanceUid).sort(), 'the two whole parts, once each');
      const committed = readThrough.known({ studyUid }).filter((i) => i.local).map((i) => i.sopInstanceUid);
      assert.deepEqual(committed.sort(), parts.slice(0, 2).map((i) => i.sopInstanceUid).sort(), 'the whole parts are kept');
    } finally {
      cut();
      reader.retrieve = retrieve;
    }
  });

  test('past the spool limit, even mid-part, the ingest starts from the spool file and goes on from the queue; every instance is kept exactly', async () => {
    const parts = makeStudy({ series: 1, instancesPerSeries: 5, patientId: 'SPOOL-LIMIT', rows: 128, columns: 128 });
    for (const instance of parts) azure.seedInstance(instance.buffer);
    await readThrough.close();
    // The limit falls inside the second part.
    readThrough = new ReadThrough({ archive, reader: () => reader, logger: silent, maxSpooledBytes: Math.floor(parts[0]!.buffer.length * 1.5) });
    const { given, givenAtIngest } = await readLiveCountingIngests(parts[0]!.studyUid);
    const total = parts.reduce((sum, i) => sum + i.buffer.length, 0);
    assert.equal(given, total);
    assert.ok(givenAtIngest[0]! < total, `an ingest started before the reader had it all (${givenAtIngest[0]} of ${total} bytes)`);
    await assertAllKept(parts);
  });

  test('a spool file that cannot be written loses the copy here, never the reader\'s answer', async () => {
    const logs: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
    await readThrough.close();
    readThrough = new ReadThrough({ archive, reader: () => reader, logger });
    const spoolFile = archive.paths.spoolFile.bind(archive.paths);
    archive.paths.spoolFile = () => join(dir, 'no-such-folder', 'part.spool.part');
    let received: Buffer[];
    try {
      received = await liveParts(study[0]!.studyUid, 'the reader was held by a spool that failed', () => undefined);
    } finally {
      archive.paths.spoolFile = spoolFile;
    }
    assert.deepEqual(received.map((bytes) => afterPreamble(bytes)), study.map((i) => afterPreamble(i.buffer)), 'every part, byte for byte');
    assert.equal(readThrough.known({ studyUid: study[0]!.studyUid }).filter((i) => i.local).length, 0, 'nothing kept here');
    assert.equal(logs.filter((line) => line.event === 'read-through-streamed-not-kept').length, study.length, 'each part logged as not kept');
    assert.deepEqual(await tempFiles(), []);
  });

  test('a study found in the archive but not listed: no instance is renamed into place or indexed before the listing', async () => {
    const studyUid = study[0]!.studyUid;
    foundByQido(studyUid);
    const listing = holdListing();
    try {
      const all = collect(readThrough.retrieve({ studyUid }));
      await listing.asked;
      // The whole answer arrives and is spooled; the commits wait for the cloud rows.
      await waitFor(async () => (await tempFiles()).length === study.length, () => 'every instance spooled');
      assert.equal(localUids().size, 0, 'nothing indexed as here before the listing');
      const files = (await readdir(archive.paths.root, { recursive: true })).filter((f) => String(f).endsWith('.dcm'));
      assert.deepEqual(files, [], 'no file renamed into place');
      listing.release();
      assert.equal((await all).length, study.length);
    } finally {
      listing.restore();
    }
  });

  test('five concurrent reads of one study, and a series and an instance inside it, share one upstream fetch', async () => {
    const studyUid = study[0]!.studyUid;
    const [first] = study;
    const readers = [
      ...Array.from({ length: 5 }, () => collect(readThrough.retrieve({ studyUid }))),
      collect(readThrough.retrieve({ studyUid, seriesUid: first!.seriesUid })),
      readThrough.instance({ studyUid, seriesUid: first!.seriesUid, sopInstanceUid: first!.sopInstanceUid }).then((i) => (i ? [i] : [])),
    ];
    const results = await Promise.all(readers);
    for (const result of results.slice(0, 5)) assert.deepEqual(result.map((i) => i.sopInstanceUid).sort(), study.map((i) => i.sopInstanceUid).sort());
    assert.deepEqual(results[5]!.map((i) => i.sopInstanceUid).sort(), study.filter((i) => i.seriesUid === first!.seriesUid).map((i) => i.sopInstanceUid).sort());
    assert.deepEqual(results[6]!.map((i) => i.sopInstanceUid), [first!.sopInstanceUid]);
    assert.equal(retrieves().length, 1, 'one WADO-RS retrieve upstream');
    assert.equal(azure.requestsOf('search').length, 1, 'one listing upstream');
    assert.equal(outboxRows(), 0);
  });

  test('an upstream cut mid-fetch leaves only whole, indexed instances; the next read fetches just the missing ones', async () => {
    const studyUid = study[0]!.studyUid;
    await azure.setFault({ kind: 'cut-retrieve', afterParts: 2, times: 1 });
    const delivered: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const instance of readThrough.retrieve({ studyUid })) delivered.push(instance.sopInstanceUid);
      })(),
      (error: unknown) => error instanceof ArchiveReadError && error.kind === 'offline',
    );
    assert.equal(delivered.length, 2, 'the two whole instances before the cut were handed out');
    assert.deepEqual(localUids(), new Set(delivered));
    assert.deepEqual(await tempFiles(), [], 'no partial file left behind');
    const onDisk = await readdir(join(archive.paths.root, studyUid), { recursive: true });
    assert.equal(onDisk.filter((name) => String(name).endsWith('.dcm')).length, 2, 'only the whole instances are on disk');
    const [partial] = archive.reads.query({ level: 'STUDY', keys: { StudyInstanceUID: studyUid } });
    assert.equal(partial?.InstanceAvailability, 'NEARLINE');

    const before = retrieves().length;
    const rest = await collect(readThrough.retrieve({ studyUid }));
    assert.deepEqual(rest.map((i) => i.sopInstanceUid).sort(), study.map((i) => i.sopInstanceUid).sort(), 'the whole study, local ones first');
    const fetched = retrieves().slice(before);
    assert.equal(fetched.length, study.length - 2, 'one instance-level request per missing instance');
    assert.ok(fetched.every((r) => /\/instances\/[0-9.]+$/.test(r.path)), 'instance-level requests only');
    assert.deepEqual(new Set(fetched.map((r) => r.path.split('/').at(-1))), new Set(study.map((i) => i.sopInstanceUid).filter((uid) => !delivered.includes(uid))));
    assert.equal(localUids().size, study.length);
    assert.equal(outboxRows(), 0);
    assert.equal(azure.storeRequests().length, 0);
  });

  test('an evicted instance is fetched again by itself; local instances are not fetched', async () => {
    const studyUid = study[0]!.studyUid;
    for (const instance of study) await archive.ingest(Readable.from([instance.buffer]), { callingAe: 'MODALITY', peer: 'test' });
    archive.cloud.markInCloud(study.map((i) => i.sopInstanceUid));
    const gone = study[4]!;
    assert.ok((await archive.evictInstance(gone.sopInstanceUid)) > 0);
    assert.equal(readThrough.needsArchive({ studyUid, seriesUid: study[0]!.seriesUid }), false, 'its other series is all here');
    const all = await collect(readThrough.retrieve({ studyUid }));
    assert.equal(all.length, study.length);
    assert.deepEqual(azure.requests.map((r) => [r.kind, r.path.split('/').at(-1)]), [['retrieve', gone.sopInstanceUid]], 'no listing: the index knows the study');
    assert.equal(azure.storeRequests().length, 0);
  });

  test('a study neither here nor in the archive ends empty; without an archive nothing is asked', async () => {
    // Asked for at once and listed meanwhile: the archive answers 404 and lists nothing.
    assert.deepEqual(await collect(readThrough.retrieve({ studyUid: '1.2.826.0.1.999.1' })), []);
    assert.deepEqual(azure.requests.map((r) => r.kind).sort(), ['retrieve', 'search']);
    assert.equal(readThrough.known({ studyUid: '1.2.826.0.1.999.1' }).length, 0);
    const offline = new ReadThrough({ archive, reader: () => undefined, logger: silent });
    assert.equal(offline.needsArchive({ studyUid: study[0]!.studyUid }), false);
    assert.deepEqual(await collect(offline.retrieve({ studyUid: study[0]!.studyUid })), []);
    assert.equal(azure.requests.length, 2);
  });

  test('an archive that cannot be reached: the read fails as offline and leaves nothing behind', async () => {
    await azure.setFault({ kind: 'down', mode: 'refuse' });
    try {
      await assert.rejects(collect(readThrough.retrieve({ studyUid: study[0]!.studyUid })),
        (error: unknown) => error instanceof ArchiveReadError && error.kind === 'offline');
    } finally {
      await azure.clearFault();
    }
    assert.equal(readThrough.known({ studyUid: study[0]!.studyUid }).length, 0);
    assert.deepEqual(await tempFiles(), []);
  });
});

describe('read-through when the archive closes its answer while the fetch is busy', () => {
  let dir: string;
  let archive: Archive;
  let upstream: LoopbackServer;
  let reader: ArchiveReader;
  let handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;

  before(async () => {
    upstream = await listenLoopback((req, res) => handler(req, res));
    reader = new ArchiveReader({ baseUrl: upstream.origin, auth: createAuthProvider({ kind: 'none' }), name: 'scripted' });
  });
  after(async () => {
    await reader?.close();
    await upstream?.close();
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-read-through-cut-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: silent, route: () => ['scripted'] }));
  });
  afterEach(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a part whole before the cut is given live and kept, though its end came while the fetch was busy; then offline', async () => {
    // As Orthanc answers (parts that name no transfer syntax), the end of the second part and the start of the third
    // arrive and the connection closes while the fetch is busy between the first part and the next (writing the
    // first to disk, say, under load): the second part arrived whole before the cut, so it is delivered and kept.
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'CUT-WHILE-BUSY', ...small });
    const studyUid = study[0]!.studyUid;
    const parts = study.map((i) => ({ body: i.buffer, contentType: 'application/dicom' }));
    const { body, contentType, boundary } = buildMultipartRelated(parts);
    // Bytes of the answer up to the middle of part n (0-based).
    const intoPart = (n: number) => buildMultipartRelated(parts.slice(0, n), { boundary }).body.length - Buffer.byteLength(`--${boundary}--\r\n`)
      + Buffer.byteLength(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`) + Math.floor(parts[n]!.body.length / 2);
    const clients = watchClientSockets();
    let restThenCut!: () => Promise<void>;
    handler = (req, res) => {
      if (req.url!.includes('/instances')) return sendJson(res, 200, study.map((i) => instanceMetadata(i.buffer)));
      res.writeHead(200, { 'content-type': contentType });
      res.write(body.subarray(0, intoPart(1)));
      restThenCut = () => {
        const closed = clients.closed(req.socket);
        res.write(body.subarray(intoPart(1), intoPart(2)), () => req.socket.destroy());
        return closed;
      };
    };
    const retrieve = reader.retrieve.bind(reader);
    reader.retrieve = async function* busyAfterTheFirstPart(target, options) {
      const answer = retrieve(target, options);
      try {
        const first = await answer.next();
        if (first.done) return;
        yield first.value;
        // The fetch has the first part and asks for the next: the rest and the cut have come and gone meanwhile.
        await restThenCut();
        for (let next = await answer.next(); !next.done; next = await answer.next()) yield next.value;
      } finally {
        await answer.return(undefined);
      }
    };
    const readThrough = new ReadThrough({ archive, reader: () => reader, logger: silent });
    const given: Buffer[] = [];
    const offline = (error: unknown) => error instanceof ArchiveReadError && error.kind === 'offline';
    try {
      // Read on past a part that breaks off (the cut one): the retrieve ends with the fetch's failure once every
      // part it could keep is committed.
      await assert.rejects((async () => {
        for await (const item of readThrough.stream({ studyUid }, { accepts: () => true })) {
          assert.ok('live' in item, 'each part as it arrives');
          const chunks: Buffer[] = [];
          try {
            for await (const chunk of item.live.body) chunks.push(chunk);
          } catch (error) {
            assert.ok(offline(error), String(error));
            continue;
          }
          given.push(Buffer.concat(chunks));
        }
      })(), offline);
      assert.equal(given.length, 2, 'the two parts whole before the cut were given');
      given.forEach((bytes, i) => assert.ok(bytes.equals(study[i]!.buffer), `part ${i + 1} byte for byte`));
      const kept = readThrough.known({ studyUid }).filter((i) => i.local).map((i) => i.sopInstanceUid);
      assert.deepEqual(kept.sort(), study.slice(0, 2).map((i) => i.sopInstanceUid).sort(), 'and kept');
    } finally {
      clients.stop();
      reader.retrieve = retrieve;
      await readThrough.close();
    }
  });
});
