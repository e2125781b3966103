import { TransferSyntax } from './transfer-syntax.js';
import { characterSetAfterDecoding } from './charset.js';
import { readDicom, type DcmjsDataset } from './dcmjs.js';
import { tagOf } from './dictionary.js';

/** Stored syntaxes we can re-encode to Explicit VR Little Endian without decompressing pixels. */
export const CONVERTIBLE_TO_EXPLICIT_LE: readonly string[] = [
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
  TransferSyntax.DeflatedExplicitVRLittleEndian,
];

const TRANSFER_SYNTAX_UID = tagOf('TransferSyntaxUID');
const SPECIFIC_CHARACTER_SET = tagOf('SpecificCharacterSet');
const WORD_SIZES: Record<string, number> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };

/** dcmjs reads big endian numbers right but leaves OW/OF/OL/OD bytes as stored: swap them. */
export function swapBinaryWords(dataset: DcmjsDataset): void {
  for (const element of Object.values(dataset)) {
    if (element.vr === 'SQ') {
      for (const item of (element.Value ?? []) as DcmjsDataset[]) swapBinaryWords(item);
      continue;
    }
    const size = WORD_SIZES[element.vr];
    if (!size) continue;
    for (const value of element.Value ?? []) {
      if (!(value instanceof ArrayBuffer)) continue;
      const bytes = new Uint8Array(value);
      for (let i = 0; i + size <= bytes.length; i += size) bytes.subarray(i, i + size).reverse();
    }
  }
}

/** Re-encodes an uncompressed Part 10 instance in Explicit VR Little Endian (in memory, one instance). */
export function toExplicitLittleEndian(file: Buffer, storedSyntax: string): Buffer {
  const dict = readDicom(file);
  if (storedSyntax === TransferSyntax.ExplicitVRBigEndian) swapBinaryWords(dict.dict);
  const charset = dict.dict[SPECIFIC_CHARACTER_SET];
  if (charset?._rawValue) {
    const { [SPECIFIC_CHARACTER_SET]: _declared, ...rest } = dict.dict;
    charset.Value = characterSetAfterDecoding(charset._rawValue.map(String), rest);
  }
  dict.meta[TRANSFER_SYNTAX_UID] = { vr: 'UI', Value: [TransferSyntax.ExplicitVRLittleEndian] };
  return Buffer.from(dict.write({ allowInvalidVRLength: true }));
}
