/**
 * A stored instance re-encoded as Explicit VR Little Endian: uncompressed syntaxes by dicom/transcode.ts,
 * compressed ones decoded by dcmjs-codecs (the same WebAssembly codecs C-MOVE conversions use). Runs in
 * an image worker thread (image-worker.ts), never on the event loop.
 */
import { createRequire } from 'node:module';
import { characterSetAfterDecoding } from '../dicom/charset.js';
import { declaredCharacterSet } from '../dicom/header.js';
import { CONVERTIBLE_TO_EXPLICIT_LE, toExplicitLittleEndian } from '../dicom/transcode.js';
import { TransferSyntax } from '../dicom/transfer-syntax.js';
import { DECODABLE } from './explicit-le.js';
import { HttpError } from './http-errors.js';

interface Codecs {
  NativeCodecs: { initializeAsync(opts?: { webAssemblyModulePathOrUrl?: string; logCodecsInfo?: boolean; logCodecsTrace?: boolean }): Promise<void> };
  Transcoder: new (buffer: ArrayBuffer) => {
    transcode(transferSyntaxUid: string): void;
    getElements(): Record<string, unknown>;
    getDicomPart10(): ArrayBuffer;
  };
}

const require = createRequire(import.meta.url);
let loading: Promise<Codecs> | undefined;

/** dcmjs-codecs and its WebAssembly, loaded with the first instance that needs decoding; a failed load is tried again. */
function loadCodecs(): Promise<Codecs> {
  loading ??= (async () => {
    const codecs = require('dcmjs-codecs') as Codecs;
    await codecs.NativeCodecs.initializeAsync({ webAssemblyModulePathOrUrl: require.resolve('dcmjs-codecs/build/dcmjs-native-codecs.wasm') });
    return codecs;
  })().catch((error: unknown) => {
    loading = undefined;
    throw new HttpError(503, `the decoders did not load: ${(error as Error)?.message ?? String(error)}`);
  });
  return loading;
}

/** The Part 10 file in Explicit VR Little Endian; throws unless convertibleToExplicitLittleEndian(stored). */
export async function asExplicitLittleEndian(file: Buffer, stored: string): Promise<Buffer> {
  if (stored === TransferSyntax.ExplicitVRLittleEndian) return file;
  if (CONVERTIBLE_TO_EXPLICIT_LE.includes(stored)) return toExplicitLittleEndian(file, stored);
  if (!DECODABLE.has(stored)) throw new HttpError(406, `no decoder for transfer syntax ${stored}`);
  const codecs = await loadCodecs();
  const transcoder = new codecs.Transcoder(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer);
  try {
    transcoder.transcode(TransferSyntax.ExplicitVRLittleEndian);
  } catch (error) {
    throw new HttpError(500, `cannot decode the ${stored} pixel data: ${(error as Error)?.message ?? String(error)}`);
  }
  const elements = transcoder.getElements();
  // The decoder writes Planar Configuration on every image; PS3.3 C.7.6.3.1.3 has it only with Samples per Pixel above 1.
  if (Number(elements.SamplesPerPixel ?? 1) === 1) delete elements.PlanarConfiguration;
  if (elements.SpecificCharacterSet !== undefined) {
    const { SpecificCharacterSet: _rewritten, ...rest } = elements;
    elements.SpecificCharacterSet = characterSetAfterDecoding(declaredCharacterSet(file), rest);
  }
  return Buffer.from(transcoder.getDicomPart10());
}
