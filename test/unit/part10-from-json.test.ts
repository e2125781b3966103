// Part 10 instances built from DICOM JSON and bulk data parts (STOW-RS metadata requests, PS3.18 10.5.1.4).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import { readDicom } from '../../main/core/dicom/dcmjs.js';
import { buildFileMeta, dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { IMPLEMENTATION_CLASS_UID } from '../../main/core/dicom/implementation-uid.js';
import { part10FromJson, type BulkPart } from '../../main/core/dicom/part10-from-json.js';

const BASE = {
  '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.7'] },
  '00080018': { vr: 'UI', Value: ['1.2.3.4.5'] },
  '0020000D': { vr: 'UI', Value: ['1.2.3.4'] },
  '0020000E': { vr: 'UI', Value: ['1.2.3.4.1'] },
};
const none = new Map<string, BulkPart>();

describe('part10FromJson', () => {
  test('file meta: Explicit VR Little Endian, our Implementation Class UID, the SOP UIDs', () => {
    const built = part10FromJson(BASE, none);
    assert.ok(built.ok);
    const meta = dicomParser.readPart10Header(built.bytes);
    const text = (tag: string) => meta.string(tag)?.replace(/\0+$/, '');
    assert.equal(text('x00020010'), '1.2.840.10008.1.2.1');
    assert.equal(text('x00020012'), IMPLEMENTATION_CLASS_UID);
    assert.equal(text('x00020002'), '1.2.840.10008.5.1.4.1.1.7');
    assert.equal(text('x00020003'), '1.2.3.4.5');
  });

  test('file meta: the group every file we write has (dicom/file-meta.ts), naming no source AE title, in each syntax built', () => {
    const image = { ...BASE, '00280010': { vr: 'US', Value: [2] }, '00280011': { vr: 'US', Value: [2] }, '00280100': { vr: 'US', Value: [8] },
      '7FE00010': { vr: 'OB', BulkDataURI: 'px' } };
    const jpeg = new Map<string, BulkPart>([['px', { type: 'image/jpeg', params: {}, bytes: Buffer.from([0xff, 0xd8, 0xff, 0xd9]) }]]);
    for (const [built, transferSyntaxUid] of [[part10FromJson(BASE, none), '1.2.840.10008.1.2.1'], [part10FromJson(image, jpeg), '1.2.840.10008.1.2.4.70']] as const) {
      assert.ok(built.ok);
      const meta = buildFileMeta({ sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: '1.2.3.4.5', transferSyntaxUid });
      assert.ok(built.bytes.subarray(0, dataSetOffset(built.bytes)).equals(meta), transferSyntaxUid);
      assert.equal(dicomParser.readPart10Header(built.bytes).elements.x00020016, undefined);
    }
  });

  test('AT values are tags (hex), not decimal numbers', () => {
    const built = part10FromJson({ ...BASE, '00209165': { vr: 'AT', Value: ['00100020', '7FE00010'] } }, none);
    assert.ok(built.ok);
    const parsed = dicomParser.parseDicom(built.bytes);
    const element = parsed.elements.x00209165!;
    assert.equal(element.length, 8);
    assert.deepEqual([built.bytes.readUInt16LE(element.dataOffset), built.bytes.readUInt16LE(element.dataOffset + 2)], [0x0010, 0x0020]);
    assert.equal(built.bytes.readUInt16LE(element.dataOffset + 4), 0x7fe0, 'second value: group 7FE0');
  });

  test('non-ASCII text is written as UTF-8 and declared ISO_IR 192, whatever the JSON declared', () => {
    const built = part10FromJson({ ...BASE, '00080005': { vr: 'CS', Value: ['ISO_IR 100'] }, '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Müller^Jürgen' }] } }, none);
    assert.ok(built.ok);
    const dict = readDicom(built.bytes).dict;
    assert.deepEqual(dict['00080005']?.Value, ['ISO_IR 192']);
    assert.equal((dict['00100010']?.Value?.[0] as { Alphabetic: string }).Alphabetic, 'Müller^Jürgen');
  });

  test('a bulk data part of another type than application/octet-stream is refused with 0xC122; a missing one with 0xC000', () => {
    const json = { ...BASE, '00420011': { vr: 'OB', BulkDataURI: 'doc' }, '00091010': { vr: 'OB', BulkDataURI: 'blob' }, '00090010': { vr: 'LO', Value: ['X'] } };
    const parts = new Map<string, BulkPart>([
      ['doc', { type: 'application/pdf', params: {}, bytes: Buffer.from('%PDF') }],
      ['blob', { type: 'application/octet-stream', params: { 'transfer-syntax': '1.2.840.10008.1.2.2' }, bytes: Buffer.alloc(4) }],
    ]);
    const refused = part10FromJson(json, parts);
    assert.ok(!refused.ok);
    assert.equal(refused.failureReason, 0xc122, 'big endian bulk data is not taken');
    assert.equal(refused.sopInstanceUid, '1.2.3.4.5');
    parts.delete('blob');
    const missing = part10FromJson(json, parts);
    assert.ok(!missing.ok);
    assert.equal(missing.failureReason, 0xc000);
    assert.match(missing.message, /00091010: BulkDataURI blob names no part/);
    parts.set('blob', { type: 'application/octet-stream', params: {}, bytes: Buffer.alloc(4) });
    const used = new Set<string>();
    assert.ok(part10FromJson(json, parts, used).ok, 'an Encapsulated Document keeps its own media type');
    assert.deepEqual([...used].sort(), ['blob', 'doc']);
  });

  test('compressed Pixel Data: one frame in its media type\'s syntax; several frames, or a syntax the type does not carry, 0xC122', () => {
    const image = { ...BASE, '00280010': { vr: 'US', Value: [2] }, '00280011': { vr: 'US', Value: [2] }, '00280100': { vr: 'US', Value: [8] },
      '7FE00010': { vr: 'OW', BulkDataURI: 'px' } };
    const jpeg = (params: Record<string, string>) => new Map<string, BulkPart>([['px', { type: 'image/jpeg', params, bytes: Buffer.from([0xff, 0xd8, 0xff, 0xd9, 0x00]) }]]);
    const built = part10FromJson(image, jpeg({}));
    assert.ok(built.ok);
    const parsed = dicomParser.parseDicom(built.bytes);
    assert.equal(parsed.string('x00020010')?.replace(/\0+$/, ''), '1.2.840.10008.1.2.4.70', 'image/jpeg without transfer-syntax: its default');
    assert.equal(parsed.elements.x7fe00010!.fragments?.length, 1, 'one fragment');
    const wrong = part10FromJson(image, jpeg({ 'transfer-syntax': '1.2.840.10008.1.2.5' }));
    assert.ok(!wrong.ok && wrong.failureReason === 0xc122);
    const multi = part10FromJson({ ...image, '00280008': { vr: 'IS', Value: [2] } }, jpeg({}));
    assert.ok(!multi.ok && multi.failureReason === 0xc122 && /2 frames/.test(multi.message));
  });

  test('uncompressed Pixel Data must fit the Image Pixel attributes (YBR_FULL_422: two samples per pixel), else 0xA900', () => {
    const image = (photometric: string, bytes: number) => part10FromJson({ ...BASE, '00280010': { vr: 'US', Value: [2] }, '00280011': { vr: 'US', Value: [4] },
      '00280100': { vr: 'US', Value: [8] }, '00280002': { vr: 'US', Value: [3] }, '00280004': { vr: 'CS', Value: [photometric] },
      '7FE00010': { vr: 'OB', BulkDataURI: 'px' } }, new Map([['px', { type: 'application/octet-stream', params: {}, bytes: Buffer.alloc(bytes) }]]));
    assert.ok(image('RGB', 24).ok);
    assert.ok(image('YBR_FULL_422', 16).ok);
    const short = image('RGB', 16);
    assert.ok(!short.ok && short.failureReason === 0xa900 && /16 bytes where .* need 24/.test(short.message));
  });
});
