import { isUncompressed, TransferSyntax } from './transfer-syntax.js';
import type { DcmjsDataset } from './dcmjs.js';
import { tagsOf } from './dictionary.js';

const TAG = tagsOf('NumberOfFrames', 'PixelData', 'Rows', 'Columns', 'SamplesPerPixel', 'BitsAllocated');

/**
 * Why frames could not be had: a frame list that is not one, a frame the instance does not have, pixel data
 * whose frames cannot be served as bytes, or stored pixel data that does not add up.
 */
export type FrameProblem = 'bad-frame-list' | 'no-such-frame' | 'not-servable' | 'inconsistent';

export class FrameError extends Error {
  constructor(readonly problem: FrameProblem, message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

function numberOf(dataset: DcmjsDataset, tag: string, fallback: number): number {
  const value = dataset[tag]?.Value?.[0];
  const n = typeof value === 'string' ? Number(value) : (value as number | undefined);
  return typeof n === 'number' && Number.isFinite(n) ? n : fallback;
}

function frameCount(dataset: DcmjsDataset): number {
  return Math.max(1, numberOf(dataset, TAG.NumberOfFrames, 1));
}

function asBuffer(value: unknown): Buffer {
  if (value instanceof ArrayBuffer) return Buffer.from(value);
  if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return Buffer.concat(value.map(asBuffer));
  throw new FrameError('inconsistent', 'unexpected pixel data value');
}

/**
 * The bytes of each requested frame (1-based). Uncompressed frames are cut from the native pixel data
 * (little endian: big endian input was swapped when read); compressed frames are the encapsulated
 * fragments of that frame.
 */
export function extractFrames(dataset: DcmjsDataset, syntax: string, wanted: number[]): Buffer[] {
  const pixel = dataset[TAG.PixelData];
  if (!pixel || !pixel.Value || pixel.Value.length === 0) throw new FrameError('no-such-frame', 'the instance has no Pixel Data');
  const frames = frameCount(dataset);
  for (const n of wanted) if (n > frames) throw new FrameError('no-such-frame', `frame ${n} does not exist (the instance has ${frames})`);
  if (isUncompressed(syntax) || syntax === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    const all = asBuffer(pixel.Value);
    const bits = numberOf(dataset, TAG.Rows, 0) * numberOf(dataset, TAG.Columns, 0) * numberOf(dataset, TAG.SamplesPerPixel, 1) * numberOf(dataset, TAG.BitsAllocated, 16);
    if (bits % 8 !== 0) throw new FrameError('not-servable', 'frames of bit-packed pixel data that do not end on a byte are not served');
    const size = bits / 8;
    return wanted.map((n) => {
      const start = (n - 1) * size;
      if (start + size > all.length) throw new FrameError('no-such-frame', `frame ${n} lies beyond the stored Pixel Data`);
      return all.subarray(start, start + size);
    });
  }
  const values = pixel.Value;
  let perFrame: Buffer[];
  if (frames === 1) perFrame = [asBuffer(values)];
  else if (values.length === frames) perFrame = values.map(asBuffer);
  else if (values.length > frames && frameMarker(syntax)) perFrame = groupFragments(values.map(asBuffer), frameMarker(syntax)!);
  else throw new FrameError('inconsistent', `cannot tell ${frames} frames apart in ${values.length} fragments without an offset table`);
  if (perFrame.length !== frames) throw new FrameError('inconsistent', `found ${perFrame.length} frames in the fragments, expected ${frames}`);
  return wanted.map((n) => perFrame[n - 1]!);
}

/** The bytes a compressed frame starts with, where the codec has one (JPEG SOI, JPEG 2000 SOC). */
function frameMarker(syntax: string): Buffer | undefined {
  if (syntax.startsWith('1.2.840.10008.1.2.4.5') || syntax.startsWith('1.2.840.10008.1.2.4.7') || syntax.startsWith('1.2.840.10008.1.2.4.8')) {
    return Buffer.from([0xff, 0xd8]);
  }
  if (syntax.startsWith('1.2.840.10008.1.2.4.9') || syntax.startsWith('1.2.840.10008.1.2.4.20')) return Buffer.from([0xff, 0x4f]);
  return undefined;
}

function groupFragments(fragments: Buffer[], marker: Buffer): Buffer[] {
  const frames: Buffer[][] = [];
  for (const fragment of fragments) {
    if (frames.length === 0 || fragment.subarray(0, marker.length).equals(marker)) frames.push([fragment]);
    else frames[frames.length - 1]!.push(fragment);
  }
  return frames.map((f) => Buffer.concat(f));
}

/** "1,3,5" → [1, 3, 5]; a FrameError for anything else. */
export function parseFrameList(text: string): number[] {
  const list = text.split(',').map((s) => s.trim());
  const numbers = list.map(Number);
  if (list.length === 0 || list.some((s) => !/^[1-9][0-9]{0,8}$/.test(s))) {
    throw new FrameError('bad-frame-list', `frame list ${JSON.stringify(text)} must be comma-separated frame numbers starting at 1`);
  }
  return numbers;
}
