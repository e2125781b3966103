export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  HtJpeg2000Lossless: '1.2.840.10008.1.2.4.201',
  HtJpeg2000RpclLossless: '1.2.840.10008.1.2.4.202',
  HtJpeg2000: '1.2.840.10008.1.2.4.203',
  Rle: '1.2.840.10008.1.2.5',
  Mpeg2: '1.2.840.10008.1.2.4.100',
  Mpeg4: '1.2.840.10008.1.2.4.102',
  Hevc: '1.2.840.10008.1.2.4.107',
} as const;

export const UNCOMPRESSED_SYNTAXES: readonly string[] = [
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
];

export function isUncompressed(ts: string): boolean {
  return UNCOMPRESSED_SYNTAXES.includes(ts);
}

/** Media type of a compressed frame as PS3.18 Table 8.7.3-2 lists it. */
export function frameMediaType(ts: string): string | undefined {
  switch (ts) {
    case TransferSyntax.JpegBaseline:
    case TransferSyntax.JpegExtended:
    case TransferSyntax.JpegLossless:
    case TransferSyntax.JpegLosslessSV1:
      return 'image/jpeg';
    case TransferSyntax.JpegLsLossless:
    case TransferSyntax.JpegLsNearLossless:
      return 'image/jls';
    case TransferSyntax.Jpeg2000Lossless:
    case TransferSyntax.Jpeg2000:
      return 'image/jp2';
    case TransferSyntax.HtJpeg2000Lossless:
    case TransferSyntax.HtJpeg2000RpclLossless:
    case TransferSyntax.HtJpeg2000:
      return 'image/jphc';
    case TransferSyntax.Rle:
      return 'image/dicom-rle';
    default:
      return undefined;
  }
}
