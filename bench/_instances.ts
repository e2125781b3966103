// Instances the benchmarks send: a CT series made once and kept on disk, and a 2 GB multi-frame instance
// written by streaming, never held in memory.
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { makeInstance } from '../test/support/instance.js';
import { newUid } from '../test/support/uid.js';

export const HUGE_BYTES = 2 * 1024 ** 3;

export interface CtSeries {
  paths: string[];
  studyUid: string;
  seriesUid: string;
}

/** `count` CT images 512×512×16 of one series under dir, with fixed UIDs rooted at uidRoot (made once, then reused). */
export async function ctSeriesFiles(dir: string, count: number, uidRoot: string): Promise<CtSeries> {
  const studyUid = `${uidRoot}.1`;
  const seriesUid = `${uidRoot}.2`;
  await mkdir(dir, { recursive: true });
  const existing = (await readdir(dir)).filter((n) => n.endsWith('.dcm'));
  if (existing.length !== count) {
    for (let i = 0; i < count; i++) {
      const bytes = makeInstance({ studyUid, seriesUid, sopInstanceUid: `${uidRoot}.3.${i}`, instanceNumber: i + 1, rows: 512, columns: 512,
        patientName: 'Bench^CT', patientId: 'BENCHCT', frameOfReferenceUid: `${uidRoot}.4` });
      await writeFile(join(dir, `${String(i).padStart(4, '0')}.dcm`), bytes);
    }
  }
  const paths = (await readdir(dir)).filter((n) => n.endsWith('.dcm')).sort().map((n) => join(dir, n));
  return { paths, studyUid, seriesUid };
}

/** Writes a 2 GB multi-frame instance (explicit VR little endian) by streaming, never holding it in memory. */
export async function writeHugeInstance(path: string, bytes = HUGE_BYTES): Promise<{ studyUid: string; seriesUid: string; sopInstanceUid: string }> {
  const rows = 1024;
  const columns = 1024;
  const frameBytes = rows * columns * 2;
  const frames = Math.floor(bytes / frameBytes);
  const studyUid = newUid();
  const seriesUid = newUid();
  const sopInstanceUid = newUid();
  const sopClassUid = '1.2.840.10008.5.1.4.1.1.7.3'; // Multi-frame Grayscale Word Secondary Capture
  const text = (group: number, element: number, vr: string, value: string, pad = ' ') => {
    let bytes = Buffer.from(value, 'latin1');
    if (bytes.length % 2) bytes = Buffer.concat([bytes, Buffer.from(pad, 'latin1')]);
    const head = Buffer.alloc(8);
    head.writeUInt16LE(group, 0);
    head.writeUInt16LE(element, 2);
    head.write(vr, 4, 'latin1');
    head.writeUInt16LE(bytes.length, 6);
    return Buffer.concat([head, bytes]);
  };
  const us = (group: number, element: number, value: number) => {
    const b = Buffer.alloc(10);
    b.writeUInt16LE(group, 0);
    b.writeUInt16LE(element, 2);
    b.write('US', 4, 'latin1');
    b.writeUInt16LE(2, 6);
    b.writeUInt16LE(value, 8);
    return b;
  };
  const metaBody = Buffer.concat([
    (() => { const b = Buffer.alloc(14); b.writeUInt16LE(2, 0); b.writeUInt16LE(1, 2); b.write('OB', 4, 'latin1'); b.writeUInt32LE(2, 8); b[13] = 1; return b; })(),
    text(2, 2, 'UI', sopClassUid, '\0'),
    text(2, 3, 'UI', sopInstanceUid, '\0'),
    text(2, 0x10, 'UI', '1.2.840.10008.1.2.1', '\0'),
    text(2, 0x12, 'UI', '2.25.1', '\0'),
  ]);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt16LE(2, 0);
  groupLength.write('UL', 4, 'latin1');
  groupLength.writeUInt16LE(4, 6);
  groupLength.writeUInt32LE(metaBody.length, 8);
  const pixelHeader = Buffer.alloc(12);
  pixelHeader.writeUInt16LE(0x7fe0, 0);
  pixelHeader.writeUInt16LE(0x0010, 2);
  pixelHeader.write('OW', 4, 'latin1');
  pixelHeader.writeUInt32LE(frames * frameBytes, 8);
  const head = Buffer.concat([
    Buffer.alloc(128), Buffer.from('DICM'), groupLength, metaBody,
    text(8, 0x16, 'UI', sopClassUid, '\0'),
    text(8, 0x18, 'UI', sopInstanceUid, '\0'),
    text(8, 0x60, 'CS', 'OT'),
    text(0x10, 0x10, 'PN', 'Bench^Huge'),
    text(0x10, 0x20, 'LO', 'BENCH2G'),
    text(0x20, 0x0d, 'UI', studyUid, '\0'),
    text(0x20, 0x0e, 'UI', seriesUid, '\0'),
    us(0x28, 0x02, 1),
    text(0x28, 0x04, 'CS', 'MONOCHROME2'),
    text(0x28, 0x08, 'IS', String(frames)),
    us(0x28, 0x10, rows),
    us(0x28, 0x11, columns),
    us(0x28, 0x100, 16),
    us(0x28, 0x101, 12),
    us(0x28, 0x102, 11),
    us(0x28, 0x103, 0),
    pixelHeader,
  ]);
  const out = createWriteStream(path);
  out.write(head);
  const frame = Buffer.alloc(frameBytes);
  for (let i = 0; i < frame.length; i += 2) frame.writeUInt16LE((i / 2) % 4096, i);
  for (let f = 0; f < frames; f++) {
    if (!out.write(frame)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { studyUid, seriesUid, sopInstanceUid };
}
