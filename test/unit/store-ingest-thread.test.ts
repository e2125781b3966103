// The ingest thread (store/ingest-thread.ts) makes each instance's DICOM JSON, and hashes data fetched from the
// archive, off the event loop: the same description as describing on the event loop gave, for every transfer
// syntax, and the same SHA-256 as the bytes'. A description that fails leaves the instance stored without one; a
// fetched instance whose hash cannot be made is refused with the reason, and nothing is left of it.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { IngestThread, type IngestWork } from '../../main/core/store/ingest-thread.js';
import { describeFile } from '../../main/core/store/instance-metadata.js';
import { makeInstance, makeInstanceInSyntax, TRANSFER_SYNTAX_UIDS, type SyntaxName } from '../support/fixtures.js';
import { indexDb } from '../support/index-db.js';

const noLimits = { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false };
const ctx = { callingAe: 'MODALITY1', peer: '127.0.0.1:40000' };

function chunked(bytes: Buffer, size = 4096): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

/** A logger whose lines are kept, parsed. */
function capturingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('the ingest thread', () => {
  let dir: string;
  let thread: IngestThread;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-describe-'));
    thread = new IngestThread();
  });
  after(async () => {
    await thread.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const syntax of Object.keys(TRANSFER_SYNTAX_UIDS) as SyntaxName[]) {
    test(`${syntax}: the same description, byte for byte, as on the event loop, from a short head, a long one and the file alone`, async () => {
      const instance = await makeInstanceInSyntax(dir, syntax, {
        rows: 16, columns: 16, extra: { ImageComments: 'before the pixels', ReferencedImageSequence: [{ ReferencedSOPInstanceUID: '1.2.3' }] },
      });
      const bytes = await readFile(instance.path);
      for (const head of [bytes.subarray(0, 200), bytes, undefined]) {
        const file = { path: instance.path, sizeBytes: bytes.length, head };
        const onLoop = await describeFile(file);
        const inThread = await thread.describe(file, { withText: true });
        assert.equal(inThread.encoding, onLoop.encoding);
        assert.deepEqual(inThread.json, onLoop.json);
        assert.equal(inThread.text, onLoop.text);
      }
    });
  }

  test('a 512×512 CT, as the read-through benchmark fetches: the same description', async () => {
    const bytes = makeInstance({ rows: 512, columns: 512, patientName: 'Bench^CT' });
    const path = join(dir, 'ct.dcm');
    await writeFile(path, bytes);
    const file = { path, sizeBytes: bytes.length, head: bytes.subarray(0, 64 * 1024) };
    const onLoop = await describeFile(file);
    const inThread = await thread.describe(file, { withText: true });
    assert.deepEqual([inThread.encoding, inThread.json, inThread.text], [onLoop.encoding, onLoop.json, onLoop.text]);
  });

  test('bytes that are not an instance: rejected with the parser\'s reason', async () => {
    const path = join(dir, 'not-dicom.bin');
    await writeFile(path, Buffer.alloc(1000, 1));
    await assert.rejects(thread.describe({ path, sizeBytes: 1000 }), (error: Error) => {
      assert.doesNotMatch(error.message, /ingest thread failed/);
      assert.ok(error.message.length > 0);
      return true;
    });
  });

  test('a digest: the SHA-256 of the file\'s bytes and the description a whole-file read gives, for a 512×512 CT', async () => {
    const bytes = makeInstance({ rows: 512, columns: 512 });
    const path = join(dir, 'digest.dcm');
    await writeFile(path, bytes);
    const digested = await thread.digest({ path, sizeBytes: bytes.length });
    assert.equal(digested.sha256, createHash('sha256').update(bytes).digest('hex'));
    const onLoop = await describeFile({ path, sizeBytes: bytes.length });
    assert.deepEqual([digested.metadata?.encoding, digested.metadata?.json], [onLoop.encoding, onLoop.json]);
    assert.equal(digested.undescribed, undefined);
  });

  test('a digest of bytes that are not an instance: the hash, and why there is no description', async () => {
    const bytes = Buffer.alloc(3000, 9);
    const path = join(dir, 'digest-not-dicom.bin');
    await writeFile(path, bytes);
    const digested = await thread.digest({ path, sizeBytes: bytes.length });
    assert.equal(digested.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.equal(digested.metadata, undefined);
    assert.ok(digested.undescribed);
  });

  test('a digest of a file that is not the size written: refused with both sizes', async () => {
    const path = join(dir, 'digest-short.dcm');
    await writeFile(path, Buffer.alloc(1000));
    await assert.rejects(thread.digest({ path, sizeBytes: 1500 }), /^Error: the file could not be hashed: the spooled file has 1000 bytes where 1500 were written$/);
  });

  test('an ingest thread that cannot start: the archive does not open, and says why', async () => {
    const failing = join(dir, 'unloadable-worker.mjs');
    await writeFile(failing, "throw new Error('a module of the thread is missing');\n");
    const heard: Error[] = [];
    const thread = new IngestThread({ filename: failing, onError: (error) => heard.push(error) });
    await assert.rejects(Archive.open({ dataDir: join(dir, 'unopened'), limits: noLimits, logger: pino({ level: 'silent' }), ingestWork: thread }),
      /^Error: the ingest thread failed: a module of the thread is missing$/);
    // A thread started again to keep one up fails the same way: heard, not an uncaught exception.
    for (const error of heard) assert.match(error.message, /a module of the thread is missing/);
  });

  test('a thread that fails: the error says the describe thread failed, and why', async () => {
    const failing = join(dir, 'failing-worker.mjs');
    await writeFile(failing, "export default () => { throw new Error('the parser is missing'); };\n");
    const broken = new IngestThread({ filename: failing });
    try {
      await assert.rejects(broken.describe({ path: join(dir, 'x.dcm'), sizeBytes: 10 }), /^Error: the ingest thread failed: the parser is missing$/);
    } finally {
      await broken.close();
    }
  });
});

describe('the archive\'s work in its ingest thread', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-describe-archive-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('every ingest of a sender\'s instance has it described in the thread, and keeps what it made', async () => {
    const thread = new IngestThread();
    let asked = 0;
    const counting: IngestWork = {
      ready: () => thread.ready(),
      describe: (file, options) => {
        asked++;
        return thread.describe(file, options);
      },
      digest: (file) => thread.digest(file),
      close: () => thread.close(),
    };
    const { archive } = await Archive.open({ dataDir: join(dir, 'counting'), limits: noLimits, logger: pino({ level: 'silent' }), ingestWork: counting });
    try {
      const results = [];
      for (let i = 0; i < 3; i++) results.push(await archive.ingest(chunked(makeInstance({ rows: 16, columns: 16 })), ctx));
      assert.equal(asked, 3);
      for (const result of results) assert.ok(archive.reads.instanceMetadata(result.header.sopInstanceUid, result.sha256), 'described');
    } finally {
      await archive.close();
    }
  });

  test('an instance fetched from the archive is hashed and described in the thread, not as it arrives: the hash of its bytes', async () => {
    const thread = new IngestThread();
    const digested: string[] = [];
    const counting: IngestWork = {
      ready: () => thread.ready(),
      describe: (file, options) => thread.describe(file, options),
      digest: async (file) => {
        const result = await thread.digest(file);
        digested.push(result.sha256);
        return result;
      },
      close: () => thread.close(),
    };
    const { archive } = await Archive.open({ dataDir: join(dir, 'fetched'), limits: noLimits, logger: pino({ level: 'silent' }), ingestWork: counting });
    try {
      const bytes = makeInstance({ rows: 64, columns: 64 });
      const result = await archive.ingest(chunked(bytes), { ...ctx, origin: 'cloud' });
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      assert.deepEqual(digested, [sha256]);
      assert.equal(result.sha256, sha256);
      assert.equal(indexDb(archive).prepare('SELECT sha256 FROM instances WHERE sop_instance_uid = ?').pluck().get(result.header.sopInstanceUid), sha256);
      assert.ok(archive.reads.instanceMetadata(result.header.sopInstanceUid, sha256), 'described, for these bytes');
      // The same bytes again: a duplicate, recognised by the hash.
      assert.equal((await archive.ingest(chunked(bytes), { ...ctx, origin: 'cloud' })).outcome, 'duplicate');
    } finally {
      await archive.close();
    }
  });

  test('an ingest thread that fails on a fetched instance: the ingest is refused with the reason, and nothing is left of it', async () => {
    const failing: IngestWork = {
      ready: async () => undefined,
      describe: () => Promise.reject(new Error('not asked')),
      digest: () => Promise.reject(new Error('the ingest thread failed: worker exited with code 1')),
      close: async () => undefined,
    };
    const dataDir = join(dir, 'fetched-failing');
    const { archive } = await Archive.open({ dataDir, limits: noLimits, logger: pino({ level: 'silent' }), ingestWork: failing });
    try {
      await assert.rejects(archive.ingest(chunked(makeInstance({ rows: 16, columns: 16 })), { ...ctx, origin: 'cloud' }),
        (error: Error) => error.name === 'OutOfResourcesError' && /the ingest thread failed: worker exited with code 1/.test(error.message));
      const db = indexDb(archive);
      assert.equal(db.prepare('SELECT COUNT(*) FROM instances').pluck().get(), 0, 'no rows');
      const files = (await readdir(dataDir, { recursive: true })).filter((f) => /\.(dcm|part)$/.test(String(f)));
      assert.deepEqual(files, [], 'no file, no temp file');
    } finally {
      await archive.close();
    }
  });

  test('a description that fails: the sender\'s instance is stored, exact and indexed, without a description; the log says why', async () => {
    const { logger, lines } = capturingLogger();
    const failing: IngestWork = {
      ready: async () => undefined,
      describe: () => Promise.reject(new Error('the ingest thread failed: worker exited with code 1')),
      digest: () => Promise.reject(new Error('not asked for a sender\'s instance')),
      close: async () => undefined,
    };
    const dataDir = join(dir, 'failing');
    const { archive } = await Archive.open({ dataDir, limits: noLimits, logger, ingestWork: failing });
    try {
      const bytes = makeInstance({ rows: 16, columns: 16 });
      const result = await archive.ingest(chunked(bytes), ctx);
      assert.equal(result.outcome, 'stored');
      assert.deepEqual(await readFile(archive.paths.absolute(result.relativePath)), bytes);
      assert.equal(archive.reads.instanceMetadata(result.header.sopInstanceUid, result.sha256), undefined);
      const db = indexDb(archive);
      assert.equal(db.prepare('SELECT COUNT(*) FROM instance_metadata').pluck().get(), 0);
      assert.equal(db.prepare('SELECT COUNT(*) FROM instances WHERE sop_instance_uid = ?').pluck().get(result.header.sopInstanceUid), 1);
      const line = lines.find((l) => l.event === 'metadata-not-described');
      assert.ok(line, 'logged');
      assert.equal(line.sopInstanceUid, result.header.sopInstanceUid);
      assert.equal(line.reason, 'the ingest thread failed: worker exited with code 1');
    } finally {
      await archive.close();
    }
  });
});
