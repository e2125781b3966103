/**
 * What can be served as Explicit VR Little Endian, for WADO-RS and WADO-URI clients that ask for it (the
 * default of PS3.18 8.7.3.5.2): uncompressed syntaxes are re-encoded (dicom/transcode.ts), compressed
 * ones decoded by dcmjs-codecs. The conversion itself runs in the image workers (explicit-le-convert.ts).
 */
import { CONVERTIBLE_TO_EXPLICIT_LE } from '../dicom/transcode.js';
import { TransferSyntax } from '../dicom/transfer-syntax.js';

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
