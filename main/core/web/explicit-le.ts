/**
 * Any stored instance as Explicit VR Little Endian, for WADO-RS and WADO-URI clients that ask for it (the
 * default of PS3.18 8.7.3.5.2): uncompressed syntaxes are re-encoded (dicom/transcode.ts), compressed
 * ones decoded by dcmjs-codecs (the same WebAssembly codecs C-MOVE conversions use), one instance at a time.
 */
import { createRequire } from 'node:module';
import { characterSetAfterDecoding } from '../dicom/charset.js';
import { declaredCharacterSet } from '../dicom/header.js';
import { CONVERTIBLE_TO_EXPLICIT_LE, toExplicitLittleEndian } from '../dicom/transcode.js';
import { TransferSyntax } from '../dicom/transfer-syntax.js';
import { HttpError } from './http-errors.js';

interface Codecs {
  NativeCodecs: { initializeAsync(opts?: { webAssemblyModulePathOrUrl?: string; logCodecsInfo?: boolean; logCodecsTrace?: boolean }): Promise<void> };
  Transcoder: new (buffer: ArrayBuffer) => {
    transcode(transferSyntaxUid: string): void;
    getElements(): Record<string, unknown>;
    getDicomPart10(): ArrayBuffer;
  };
}

/** The compressed syntaxes dcmjs-codecs decodes. */
export const DECODABLE: ReadonlySet<string> = new Set([
  TransferSyntax.Rle,
  TransferSyntax.JpegBaseline,
  TransferSyntax.JpegExtended,
  TransferSyntax.JpegLossless,
  TransferSyntax.JpegLosslessSV1,
  TransferSyntax.JpegLsLossless,
  TransferSyntax.JpegLsNearLossless,
  TransferSyntax.Jpeg2000Lossless,
  TransferSyntax.Jpeg2000,
  TransferSyntax.HtJpeg2000Lossless,
  TransferSyntax.HtJpeg2000RpclLossless,
  TransferSyntax.HtJpeg2000,
]);

export function convertibleToExplicitLittleEndian(stored: string): boolean {
  return CONVERTIBLE_TO_EXPLICIT_LE.includes(stored) || DECODABLE.has(stored);
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
