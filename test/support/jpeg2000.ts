import codecs from 'dcmjs-codecs';

// DCMTK 3.6.7 on Debian has no JPEG 2000 encoder (dcmcjp2k is not shipped), so JPEG 2000 comes
// from the OpenJPEG build inside dcmjs-codecs' WebAssembly module.

let initialized: Promise<void> | undefined;

function initializeCodecs(): Promise<void> {
  initialized ??= codecs.NativeCodecs.initializeAsync();
  return initialized;
}

/** Re-encodes an uncompressed Part 10 file as JPEG 2000 Image Compression (Lossless Only). */
export async function encodeJpeg2000Lossless(part10: Buffer): Promise<Buffer> {
  await initializeCodecs();
  const input = part10.buffer.slice(part10.byteOffset, part10.byteOffset + part10.byteLength) as ArrayBuffer;
  const transcoder = new codecs.Transcoder(input);
  transcoder.transcode(codecs.constants.TransferSyntax.Jpeg2000Lossless);
  return Buffer.from(transcoder.getDicomPart10());
}
