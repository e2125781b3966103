// A 2 GB instance streams from the archive through the reader with bounded memory: the reader runs in a
// child process (so only its memory is measured) against a server here that writes the answer with backpressure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type http from 'node:http';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { listenLoopback, type LoopbackServer } from '../doubles/http-server.js';

const CHILD = fileURLToPath(new URL('./children/archive-stream.ts', import.meta.url));
const PART_BYTES = 2 * 1024 ** 3;
const SMALL_PART_BYTES = 256 * 1024 ** 2;
const SECOND_PART = Buffer.from('a small second instance');
// The process alone (Node 24, tsx, the modules) takes about 125 MB before the first byte; V8 then lets freed socket
// buffers wait for a collection until its external-memory limit, a plateau of about 100 MB whatever the size.
const LIMIT_BYTES = 300 * 1024 ** 2;

async function writeAll(res: http.ServerResponse, chunk: Buffer): Promise<void> {
  if (!res.write(chunk)) await once(res, 'drain');
}

let server: LoopbackServer;
before(async () => {
  const block = Buffer.alloc(1024 ** 2, 0x41); // never holds the boundary
  server = await listenLoopback(async (req, res) => {
    const size = req.url?.startsWith('/small/') ? SMALL_PART_BYTES : PART_BYTES;
    res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=big-boundary' });
    await writeAll(res, Buffer.from('--big-boundary\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n'));
    for (let sent = 0; sent < size; sent += block.length) await writeAll(res, block);
    await writeAll(res, Buffer.from('\r\n--big-boundary\r\nContent-Type: application/dicom\r\n\r\n'));
    await writeAll(res, SECOND_PART);
    res.end('\r\n--big-boundary--\r\n');
  });
});
after(async () => {
  await server.close();
});

/** Runs the reader child against `base`; returns what it read and its peak RSS. */
async function streamInChild(base: string): Promise<{ sizes: number[]; peakRssBytes: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, base], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, stderr);
  return JSON.parse(stdout.trim()) as { sizes: number[]; peakRssBytes: number };
}

const mb = (bytes: number) => `${(bytes / 1024 ** 2).toFixed(0)} MB`;

test('a 2 GB instance streams through the archive reader in under 300 MB of RSS, about as much as a 256 MB one', { timeout: 300_000 }, async () => {
  const small = await streamInChild(`${server.origin}/small/v2`);
  assert.deepEqual(small.sizes, [SMALL_PART_BYTES, SECOND_PART.length]);
  const large = await streamInChild(`${server.origin}/v2`);
  assert.deepEqual(large.sizes, [PART_BYTES, SECOND_PART.length]);
  assert.ok(large.peakRssBytes < LIMIT_BYTES, `peak RSS ${mb(large.peakRssBytes)}`);
  // Both sizes are past V8's plateau, so what the stream holds must not follow its size: 8× the bytes, not 8× the memory.
  assert.ok(large.peakRssBytes - small.peakRssBytes < 64 * 1024 ** 2, `256 MB: ${mb(small.peakRssBytes)}, 2 GB: ${mb(large.peakRssBytes)}`);
  console.log(`peak RSS of the reader: ${mb(small.peakRssBytes)} for 256 MB, ${mb(large.peakRssBytes)} for 2 GB`);
});
