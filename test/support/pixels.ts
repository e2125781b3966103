/**
 * A diagonal gradient over the full stored range, shifted per frame so frames differ.
 * Returns raw little-endian bytes for one or more frames, padded to an even length.
 */
export function gradientPixels(o: { rows: number; columns: number; frames: number; bitsStored: number; bitsAllocated: 8 | 16 }): Buffer {
  const { rows, columns, frames } = o;
  const max = 2 ** o.bitsStored - 1;
  const bytesPerSample = o.bitsAllocated / 8;
  const length = rows * columns * frames * bytesPerSample;
  const out = Buffer.alloc(length + (length % 2));
  let i = 0;
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < rows; y++) {
      for (let x = 0; x < columns; x++) {
        let t = (x / Math.max(1, columns - 1) + y / Math.max(1, rows - 1)) / 2 + f / frames;
        if (t > 1) t -= 1;
        const value = Math.round(t * max);
        if (bytesPerSample === 1) out.writeUInt8(value, i);
        else out.writeUInt16LE(value, i);
        i += bytesPerSample;
      }
    }
  }
  return out;
}

/** Big endian transfer syntax stores OW words byte-swapped; dcmjs writes pixel bytes untouched. */
export function swap16(bytes: Buffer): Buffer {
  return Buffer.from(bytes).swap16();
}
