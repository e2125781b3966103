import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { multipartBody } from '../../main/core/multipart/writer.js';
import { readMultipartRelated } from '../doubles/multipart-related.js';

describe('forward multipart body', () => {
  let dir = '';
  after(() => rm(dir, { recursive: true, force: true }));

  it('streams every file as one application/dicom part with the declared length', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fwd-mp-'));
    const contents = [Buffer.alloc(700_000, 1), Buffer.from('DICM second'), Buffer.alloc(0)];
    const handles = [];
    for (const [i, content] of contents.entries()) {
      await writeFile(join(dir, `${i}.dcm`), content);
      handles.push(await open(join(dir, `${i}.dcm`)));
    }
    const body = multipartBody(handles.map((handle, i) => ({ handle, sizeBytes: contents[i]!.length })), 'b0undary', 64 * 1024);
    const chunks: Uint8Array[] = [];
    let largest = 0;
    for await (const chunk of body.stream()) {
      chunks.push(chunk);
      largest = Math.max(largest, chunk.length);
    }
    for (const handle of handles) await handle.close();
    const bytes = Buffer.concat(chunks);
    assert.equal(bytes.length, body.contentLength);
    assert.ok(largest <= 64 * 1024, 'never holds more than one chunk of a file');
    assert.equal(body.contentType, 'multipart/related; type="application/dicom"; boundary=b0undary');
    const parts = [];
    for await (const part of readMultipartRelated((async function* () { yield bytes; })(), 'b0undary')) parts.push(part);
    assert.equal(parts.length, 3);
    parts.forEach((part, i) => assert.ok(Buffer.from(part.body).equals(contents[i]!)));
  });
});
