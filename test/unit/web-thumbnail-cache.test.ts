// The thumbnail cache's own rules (main/core/web/thumbnail-cache.ts), with a stand-in for the renderer.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { cacheKey, ThumbnailCache } from '../../main/core/web/thumbnail-cache.js';
import type { RenderOptions } from '../../main/core/web/image-render.js';

const OPTIONS: RenderOptions = { frame: 0, viewport: { width: 128, height: 128 }, format: 'image/jpeg', quality: 90 };
const INSTANCE = { sopInstanceUid: '2.25.1234', sha256: 'a'.repeat(64) };

async function withCache(run: (cache: ThumbnailCache, dir: string) => Promise<void>, maxBytes = 1024 ** 2): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-thumbnail-cache-'));
  try {
    await run(new ThumbnailCache({ dir, maxBytes: () => maxBytes, logger: pino({ level: 'silent' }) }), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('every parameter that changes the image, and the content hash, change the key', () => {
  const base = cacheKey(INSTANCE, OPTIONS);
  const variants: Array<[string, typeof INSTANCE, RenderOptions]> = [
    ['content', { ...INSTANCE, sha256: 'b'.repeat(64) }, OPTIONS],
    ['instance', { ...INSTANCE, sopInstanceUid: '2.25.1235' }, OPTIONS],
    ['frame', INSTANCE, { ...OPTIONS, frame: 1 }],
    ['viewport', INSTANCE, { ...OPTIONS, viewport: { width: 64, height: 128 } }],
    ['region', INSTANCE, { ...OPTIONS, region: { x: 0, y: 0, width: 10, height: 10 } }],
    ['relative region', INSTANCE, { ...OPTIONS, relativeRegion: { x0: 0, y0: 0, x1: 0.5, y1: 0.5 } }],
    ['window', INSTANCE, { ...OPTIONS, window: { center: 40, width: 400 } }],
    ['window function', INSTANCE, { ...OPTIONS, window: { center: 40, width: 400, voiFunction: 'SIGMOID' } }],
    ['media type', INSTANCE, { ...OPTIONS, format: 'image/png' }],
    ['quality', INSTANCE, { ...OPTIONS, quality: 80 }],
  ];
  const keys = new Set([base]);
  for (const [what, instance, options] of variants) {
    const key = cacheKey(instance, options);
    assert.ok(!keys.has(key), `${what} changes the key`);
    keys.add(key);
  }
});

test('an instance dropped while its thumbnail renders: the image is answered and not kept', async () => {
  await withCache(async (cache, dir) => {
    let finish!: (bytes: Buffer) => void;
    const rendering = cache.image(INSTANCE, OPTIONS, () => new Promise<Buffer>((resolve) => (finish = resolve)));
    await new Promise((resolve) => setImmediate(resolve));
    await cache.dropInstance(INSTANCE.sopInstanceUid);
    finish(Buffer.from('image'));
    assert.deepEqual(await rendering, Buffer.from('image'));
    assert.deepEqual(await readdir(dir), [], 'nothing kept for a dropped instance');
    assert.equal(cache.sizeBytes, 0);
    // The next rendering (of the instance as it is now) is kept again.
    await cache.image(INSTANCE, OPTIONS, async () => Buffer.from('image 2'));
    assert.equal((await readdir(join(dir, INSTANCE.sopInstanceUid))).length, 1);
  });
});

test('a rendering that fails is not kept, and its error reaches the request', async () => {
  await withCache(async (cache, dir) => {
    await assert.rejects(cache.image(INSTANCE, OPTIONS, async () => {
      throw new Error('cannot render');
    }), /cannot render/);
    assert.deepEqual(await readdir(dir), []);
  });
});

test('0 bytes turns the cache off', async () => {
  await withCache(async (cache, dir) => {
    let made = 0;
    for (let i = 0; i < 2; i++) await cache.image(INSTANCE, OPTIONS, async () => Buffer.from(`image ${++made}`));
    assert.equal(made, 2);
    assert.deepEqual(await readdir(dir), []);
  }, 0);
});
