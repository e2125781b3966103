// C-MOVE/C-GET's arrivals from the archive (dimse/archive-retrieve.ts) through the read-through, against the
// Azure DICOM double: an instance larger than what a retrieve may hold is declined part-way and sent from its
// file once committed; smaller ones go on as their bytes are whole.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { ArchiveReader } from '../../main/core/cloud/archive-reader.js';
import { ReadThrough, type Retrieved } from '../../main/core/cloud/read-through.js';
import { archiveRetrieveLimits, arrivals, type Arrival } from '../../main/core/dimse/archive-retrieve.js';
import { createAuthProvider } from '../../main/core/forward/auth.js';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { makeStudy } from '../support/study.js';

const silent = pino({ level: 'silent' });
/** The double nulls the preamble, as the Azure DICOM service does; the rest is as stored. */
const afterPreamble = (bytes: Buffer) => bytes.subarray(128);

let azure: AzureDicomDouble;
let reader: ArchiveReader;
before(async () => {
  azure = await AzureDicomDouble.start();
  reader = new ArchiveReader({ baseUrl: azure.baseUrl, auth: createAuthProvider({ kind: 'none' }), name: 'azure' });
});
after(async () => {
  await reader?.close();
  await azure?.stop();
});

test('an instance larger than a retrieve may hold is declined part-way and sent from its file; the reader never holds more of it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-archive-retrieve-'));
  const { archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: silent, route: () => ['azure'] });
  const readThrough = new ReadThrough({ archive, reader: () => reader, logger: silent });
  const limit = 128 * 1024;
  const saved = archiveRetrieveLimits.heldInstanceBytes;
  archiveRetrieveLimits.heldInstanceBytes = limit;
  try {
    // A 512 KB instance (many chunks) between two small ones.
    const studyUid = makeStudy({ series: 1, instancesPerSeries: 1, rows: 8, columns: 8 })[0]!.studyUid;
    const [first, last] = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'HELD', studyUid, rows: 8, columns: 8 });
    const [large] = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'HELD', studyUid, rows: 512, columns: 512 });
    const study = [first!, large!, last!];
    for (const instance of study) azure.seedInstance(instance.buffer);

    // What the reader takes of each live part, and the largest chunk.
    const pulled: number[] = [];
    let largestChunk = 0;
    let declines = 0;
    const stream = readThrough.stream.bind(readThrough);
    const counted: typeof readThrough.stream = (scope, options) => (async function* counting(): AsyncGenerator<Retrieved> {
      for await (const item of stream(scope, options)) {
        if (!('live' in item)) {
          yield item;
          continue;
        }
        const index = pulled.push(0) - 1;
        const { live } = item;
        yield { live: { transferSyntax: live.transferSyntax, decline: () => (declines++, live.decline()), body: (async function* body() {
          for await (const chunk of live.body) {
            pulled[index]! += chunk.length;
            largestChunk = Math.max(largestChunk, chunk.length);
            yield chunk;
          }
        })() } };
      }
    })();

    const got: Arrival[] = [];
    for await (const arrival of arrivals([], [{ studyUid }], { stream: counted, list: readThrough.list.bind(readThrough), needsArchive: () => true },
      (path) => archive.paths.absolute(path), new AbortController().signal, silent)) got.push(arrival);

    assert.ok(got.every((a) => 'ready' in a), 'no failure');
    const ready = got.map((a) => (a as Extract<Arrival, { ready: unknown }>).ready);
    assert.deepEqual(ready.map((r) => r.sopInstanceUid).sort(), study.map((i) => i.sopInstanceUid).sort(), 'each instance once');
    for (const small of [first!, last!]) {
      const sent = ready.find((r) => r.sopInstanceUid === small.sopInstanceUid)!;
      assert.ok(sent.bytes && afterPreamble(sent.bytes).equals(afterPreamble(small.buffer)), 'a small one goes on from its bytes');
    }
    const big = ready.find((r) => r.sopInstanceUid === large!.sopInstanceUid)!;
    // (not assert.equal: the message of a failure would diff half a megabyte)
    assert.ok(big.bytes === undefined, `the large one is not held (held ${big.bytes?.length} bytes)`);
    assert.ok(big.path, 'it is sent from its file');
    assert.ok(afterPreamble(await readFile(big.path)).equals(afterPreamble(large!.buffer)), 'its file is the whole instance');
    assert.equal(declines, 1, 'one part declined');
    assert.ok(largestChunk < limit, `chunks of at most ${largestChunk} bytes`);
    // A chunk is taken before the reader knows it goes past the limit; it keeps none past it.
    for (const bytes of pulled) assert.ok(bytes <= limit + largestChunk, `took ${bytes} bytes of a part, limit ${limit}`);
  } finally {
    archiveRetrieveLimits.heldInstanceBytes = saved;
    await readThrough.close();
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  }
});
