import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PduReader } from '../../main/core/dimse/pdu-reader.js';

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

describe('PDU reader', () => {
  const pdus = [pdu(0x01, Buffer.from('associate')), pdu(0x04, Buffer.alloc(70_000, 7)), pdu(0x04, Buffer.from('x')), pdu(0x05, Buffer.alloc(4))];
  const stream = Buffer.concat(pdus);

  for (const sizes of [[stream.length], [1], [3, 5], [6], [65_536], [7, 40_000, 2]]) {
    test(`yields the same PDUs whatever the chunking (${sizes.join(',')})`, () => {
      const reader = new PduReader();
      const out: Buffer[] = [];
      for (const chunk of cut(stream, sizes)) reader.push(chunk, (p) => out.push(Buffer.from(p)));
      assert.deepEqual(out, pdus);
    });
  }

  test('a PDU inside one chunk is a view of it, not a copy', () => {
    const reader = new PduReader();
    const out: Buffer[] = [];
    reader.push(stream, (p) => out.push(p));
    assert.equal(out[1]!.buffer, stream.buffer);
  });

  test('a PDU claiming more than 16 MB is an error before anything is buffered', () => {
    const head = Buffer.from([0x04, 0, 0, 0, 0, 0]);
    head.writeUInt32BE(0xffff_fff0, 2);
    assert.throws(() => new PduReader().push(head, () => undefined), /exceeds/);
  });

  test('an unknown PDU type is an error', () => {
    assert.throws(() => new PduReader().push(Buffer.from([0x09, 0, 0, 0, 0, 0]), () => undefined), /Unknown PDU type: 9/);
  });
});
