// Each instance's DICOM JSON is made in the describe thread (store/describe-pool.ts), off the event loop: the
// same bytes as describing on the event loop gave, for every transfer syntax; a thread that fails says why,
// and the instance is stored all the same, without a description (made later from its file).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { DescribeThread, type Describer } from '../../main/core/store/describe-pool.js';
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

describe('the describe thread', () => {
  let dir: string;
  let thread: DescribeThread;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-describe-'));
    thread = new DescribeThread();
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
      assert.doesNotMatch(error.message, /describe thread failed/);
      assert.ok(error.message.length > 0);
      return true;
    });
  });

  test('a thread that fails: the error says the describe thread failed, and why', async () => {
    const failing = join(dir, 'failing-worker.mjs');
    await writeFile(failing, "export default () => { throw new Error('the parser is missing'); };\n");
    const broken = new DescribeThread({ filename: failing });
    try {
      await assert.rejects(broken.describe({ path: join(dir, 'x.dcm'), sizeBytes: 10 }), /^Error: the describe thread failed: the parser is missing$/);
    } finally {
      await broken.close();
    }
  });
});

describe('the archive describes in its describe thread', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-describe-archive-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('every ingest asks the describer, and keeps what it made', async () => {
    const thread = new DescribeThread();
    let asked = 0;
    const counting: Describer = {
      describe: (file, options) => {
        asked++;
        return thread.describe(file, options);
      },
      close: () => thread.close(),
    };
    const { archive } = await Archive.open({ dataDir: join(dir, 'counting'), limits: noLimits, logger: pino({ level: 'silent' }), describer: counting });
    try {
      const results = [];
      for (let i = 0; i < 3; i++) results.push(await archive.ingest(chunked(makeInstance({ rows: 16, columns: 16 })), ctx));
      assert.equal(asked, 3);
      for (const result of results) assert.ok(archive.reads.instanceMetadata(result.header.sopInstanceUid, result.sha256), 'described');
    } finally {
      await archive.close();
    }
  });

  test('a describer that fails: the instance is stored, exact and indexed, without a description; the log says why', async () => {
    const { logger, lines } = capturingLogger();
    const failing: Describer = {
      describe: () => Promise.reject(new Error('the describe thread failed: worker exited with code 1')),
      close: async () => undefined,
    };
    const dataDir = join(dir, 'failing');
    const { archive } = await Archive.open({ dataDir, limits: noLimits, logger, describer: failing });
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
      assert.equal(line.reason, 'the describe thread failed: worker exited with code 1');
    } finally {
      await archive.close();
    }
  });
});
