import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { makeInstance } from '../support/instance.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

let w: WebAppliance;
before(async () => {
  w = await startWebAppliance();
});
after(async () => {
  await w.stop();
});

test('a large STOW-RS request is parsed as a stream: memory does not grow with the body', { timeout: 120_000 }, async () => {
  const instance = makeInstance({ rows: 512, columns: 512 }); // ~0.5 MB; resent, so most parts are duplicates
  const parts = 500; // ~260 MB in one request
  const boundary = 'memory-test-boundary';
  async function* body(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < parts; i++) {
      yield Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
      yield instance;
    }
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  try {
    // node:http with pipe() keeps the client's side bounded by backpressure too.
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = httpRequest(`${w.dicomWebUrl}/studies`, {
        method: 'POST',
        headers: { authorization: `Bearer ${w.token}`, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (c: Buffer) => chunks.push(c));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      });
      request.on('error', reject);
      Readable.from(body()).pipe(request);
    });
    assert.equal(status, 200, text.slice(0, 300));
    const json = JSON.parse(text) as Record<string, { Value: unknown[] }>;
    assert.equal(json['00081199']!.Value.length, parts);
  } finally {
    clearInterval(sampler);
  }
  const growthMb = (peak - before) / 1e6;
  console.log(`# STOW-RS of ${(instance.length * parts / 1e6).toFixed(0)} MB: RSS grew ${growthMb.toFixed(0)} MB`);
  assert.ok(growthMb < 150, `RSS grew by ${growthMb.toFixed(0)} MB for a ${(instance.length * parts / 1e6).toFixed(0)} MB request`);
});
