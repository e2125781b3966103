import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BodyTooLargeError, MalformedMultipartError, readMultipart } from '../../main/core/multipart/reader.js';
import { parseAccept, parseMediaType } from '../../main/core/multipart/media-type.js';
import { negotiateDicom } from '../../main/core/web/wado-retrieve.js';

async function* chunked(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function collect(source: AsyncIterable<Buffer>, boundary: string, maxBytes?: number) {
  const parts: Array<{ headers: Record<string, string>; body: Buffer }> = [];
  for await (const part of readMultipart(source, boundary, { maxBytes })) {
    const chunks: Buffer[] = [];
    for await (const chunk of part.body) chunks.push(chunk);
    parts.push({ headers: part.headers, body: Buffer.concat(chunks) });
  }
  return parts;
}

const b = 'bnd';
const bodyWith = (size: number) => Buffer.concat([
  Buffer.from(`preamble\r\n--${b}\r\nContent-Type: application/dicom\r\n\r\n`),
  Buffer.from('first\r\n--bn not a delimiter'),
  Buffer.from(`\r\n--${b}  \r\ncontent-type: application/dicom\r\nX-Other: 1\r\n\r\n`),
  Buffer.alloc(size, 7),
  Buffer.from(`\r\n--${b}--\r\nepilogue`),
]);
const body = bodyWith(200_000);

test('multipart/related parts come out whole at every chunk size', async () => {
  for (const size of [1, 2, 3, 7, 64, 1000, 65_536, body.length]) {
    const partSize = size < 64 ? 3_000 : 200_000; // byte-by-byte over 200 KB only costs test time
    const parts = await collect(chunked(bodyWith(partSize), size), b);
    assert.equal(parts.length, 2, `chunk size ${size}`);
    assert.equal(parts[0]!.body.toString(), 'first\r\n--bn not a delimiter');
    assert.equal(parts[1]!.headers['x-other'], '1');
    assert.equal(parts[1]!.body.length, partSize);
    assert.ok(parts[1]!.body.every((x) => x === 7));
  }
});

test('an unread part is drained before the next one', async () => {
  const seen: string[] = [];
  for await (const part of readMultipart(chunked(body, 100), b)) seen.push(part.headers['content-type']!);
  assert.equal(seen.length, 2);
});

test('a body without a closing delimiter, or without any delimiter, is malformed', async () => {
  const truncated = body.subarray(0, body.length - 20);
  await assert.rejects(collect(chunked(truncated, 999), b), MalformedMultipartError);
  await assert.rejects(collect(chunked(Buffer.from('nothing here'), 4), b), MalformedMultipartError);
  await assert.rejects(collect(chunked(Buffer.from(`--${b}\r\nno-colon-header\r\n\r\nx\r\n--${b}--`), 4), b), MalformedMultipartError);
});

test('a body over the limit stops with BodyTooLargeError', async () => {
  await assert.rejects(collect(chunked(body, 4096), b, 50_000), BodyTooLargeError);
});

test('media types and Accept headers parse with quoted parameters and q-values', () => {
  const type = parseMediaType('multipart/related; type="application/dicom"; boundary="a;b"');
  assert.deepEqual(type?.params, { type: 'application/dicom', boundary: 'a;b' });
  const accept = parseAccept('application/json;q=0.5, multipart/related; type="application/dicom"; transfer-syntax=*');
  assert.equal(accept[0]!.type, 'multipart/related');
  assert.equal(accept[0]!.params['transfer-syntax'], '*');
});

test('WADO-RS negotiation: original with *, conversion to Explicit VR LE where a codec exists, nothing otherwise', () => {
  const star = parseAccept('multipart/related; type="application/dicom"; transfer-syntax=*');
  assert.deepEqual(negotiateDicom(star, '1.2.840.10008.1.2.4.50'), { syntax: '1.2.840.10008.1.2.4.50', convert: false });
  const plain = parseAccept('multipart/related; type="application/dicom"');
  assert.deepEqual(negotiateDicom(plain, '1.2.840.10008.1.2'), { syntax: '1.2.840.10008.1.2.1', convert: true });
  assert.deepEqual(negotiateDicom(plain, '1.2.840.10008.1.2.1'), { syntax: '1.2.840.10008.1.2.1', convert: false });
  assert.deepEqual(negotiateDicom(plain, '1.2.840.10008.1.2.4.80'), { syntax: '1.2.840.10008.1.2.1', convert: true }, 'JPEG-LS is decoded');
  assert.equal(negotiateDicom(plain, '1.2.840.10008.1.2.4.100'), undefined, 'MPEG-2 has no decoder here');
  const stored = parseAccept('multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.80');
  assert.deepEqual(negotiateDicom(stored, '1.2.840.10008.1.2.4.80'), { syntax: '1.2.840.10008.1.2.4.80', convert: false });
});
