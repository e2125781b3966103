import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { sendMultipart, type ResponsePart } from '../../main/core/web/multipart-response.js';
import { readMultipart } from '../../main/core/multipart/reader.js';

/** Descriptors of this process open on files under `dir`, to see that every file the writer opened is closed again. */
async function openFilesUnder(dir: string): Promise<number> {
  let count = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) count++;
  }
  return count;
}

describe('multipart responses written from files', () => {
  let dir: string;
  let app: FastifyInstance;
  let base: string;
  const files: Record<string, Buffer> = {};
  let parts: ResponsePart[] = [];
  const lateErrors: unknown[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-mpresp-'));
    // Sizes around the 1 MiB read chunk, an empty file, and enough files to exercise the read-ahead.
    const sizes = [0, 1, 1024 * 1024 - 1, 1024 * 1024, 1024 * 1024 + 1, 3 * 1024 * 1024 + 17, ...Array.from({ length: 12 }, (_, i) => 1000 * (i + 1))];
    for (const [i, size] of sizes.entries()) {
      const name = `f${i}.bin`;
      files[name] = randomBytes(size);
      await writeFile(join(dir, name), files[name]!);
    }
    app = Fastify();
    app.get('/parts', async (_request, reply) => {
      await sendMultipart(reply, 'application/dicom', parts, (error) => lateErrors.push(error));
      return reply;
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  });

  after(async () => {
    await app.close();
    await rm(dir, { recursive: true, force: true });
  });

  const filePart = (name: string, size = files[name]!.length): ResponsePart => ({ contentType: 'application/dicom', file: { path: join(dir, name), size } });

  test('every file comes out byte for byte, in order, with a matching Content-Length', async () => {
    const names = Object.keys(files);
    parts = [...names.map((name) => filePart(name)), { contentType: 'application/octet-stream', bytes: () => Buffer.from('made on demand') }];
    const response = await fetch(`${base}/parts`);
    assert.equal(response.status, 200);
    const boundary = /boundary=([^;]+)/.exec(response.headers.get('content-type') ?? '')?.[1];
    assert.ok(boundary);
    const body = Buffer.from(await response.arrayBuffer());
    // One part is made on demand, so the length is unknown and the body is chunked.
    assert.equal(response.headers.get('content-length'), null);
    const got: Buffer[] = [];
    for await (const part of readMultipart((async function* () { yield body; })(), boundary)) {
      const chunks: Buffer[] = [];
      for await (const chunk of part.body) chunks.push(chunk);
      got.push(Buffer.concat(chunks));
    }
    assert.equal(got.length, names.length + 1);
    names.forEach((name, i) => assert.ok(got[i]!.equals(files[name]!), `${name} differs`));
    assert.equal(got[names.length]!.toString(), 'made on demand');
    assert.equal(await openFilesUnder(dir), 0);

    parts = names.map((name) => filePart(name));
    const sized = await fetch(`${base}/parts`);
    const sizedBody = Buffer.from(await sized.arrayBuffer());
    assert.equal(Number(sized.headers.get('content-length')), sizedBody.length);
  });

  test('a first file that cannot be opened gets an error status, not a cut connection', async () => {
    parts = [filePart('f1.bin'), { contentType: 'application/dicom', file: { path: join(dir, 'missing.bin'), size: 5 } }];
    parts.reverse();
    const response = await fetch(`${base}/parts`);
    assert.equal(response.status, 500);
    await response.arrayBuffer();
  });

  test('a later file shorter than its index row cuts the connection and is reported', async () => {
    lateErrors.length = 0;
    parts = [filePart('f2.bin'), filePart('f3.bin', files['f3.bin']!.length + 10)];
    await assert.rejects(async () => {
      const response = await fetch(`${base}/parts`);
      await response.arrayBuffer();
    });
    assert.equal(lateErrors.length, 1);
    assert.match(String(lateErrors[0]), /shorter than indexed/);
    assert.equal(await openFilesUnder(dir), 0);
  });

  test('a client that goes away mid-response leaves no open files behind', async () => {
    const names = Object.keys(files);
    parts = Array.from({ length: 20 }, () => names.map((name) => filePart(name))).flat();
    await new Promise<void>((resolve, reject) => {
      const request = httpRequest(`${base}/parts`, (response) => {
        let received = 0;
        response.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > 2 * 1024 * 1024) request.destroy();
        });
        response.on('error', () => undefined);
        request.on('close', resolve);
      });
      request.on('error', () => undefined);
      request.on('close', resolve);
      request.setTimeout(10_000, () => reject(new Error('no response')));
      request.end();
    });
    // The server notices the reset asynchronously; wait until its descriptors are back.
    for (let i = 0; i < 200 && (await openFilesUnder(dir)) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await openFilesUnder(dir), 0);
    // And it still serves.
    parts = [filePart('f1.bin')];
    const response = await fetch(`${base}/parts`);
    assert.equal(response.status, 200);
    await response.arrayBuffer();
  });
});
