/**
 * Text of a data set decoded under its Specific Character Set (0008,0005), by dicom-character-set: every
 * character set of PS3.3 C.12.1.1.2, ISO 2022 code extensions (escape sequences, PS3.5 6.1.2.5) included.
 */
import { convertBytes } from 'dicom-character-set';

/** Only the default repertoire declared (no value, or ISO_IR 6 alone). */
function defaultRepertoire(specificCharacterSet: string | undefined): boolean {
  return (specificCharacterSet ?? '').split('\\').every((value) => ['', 'ISO_IR 6', 'ISO 2022 IR 6'].includes(value.trim()));
}

/**
 * The text of one element's value, leading and trailing padding removed. `vr` tells the decoder which
 * delimiters reset the character set ('^' and '=' for PN, PS3.5 6.1.2.5.3).
 */
export function decodeText(bytes: Uint8Array, specificCharacterSet: string | undefined, vr?: string): string {
  // Bytes above 0x7F without a declared character set are common in the field; read them as Latin-1
  // rather than losing them, as most archives do.
  let text: string;
  try {
    text = defaultRepertoire(specificCharacterSet)
      ? new TextDecoder('latin1').decode(bytes)
      : convertBytes(specificCharacterSet, bytes, vr ? { vr } : undefined);
  } catch {
    // An escape sequence or character set the standard does not define: the instance is still stored as
    // received; its index keeps the bytes one to one (Latin-1) so that they stay searchable.
    text = new TextDecoder('latin1').decode(bytes);
  }
  return text.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

const NOT_ASCII = /[^\x00-\x7f]/;

/** Whether every string in a data set (naturalized or not, sequences included) is ASCII; binary values are skipped. */
function allTextAscii(value: unknown): boolean {
  if (typeof value === 'string') return !NOT_ASCII.test(value);
  if (value === null || typeof value !== 'object' || value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return true;
  return Object.values(value).every(allTextAscii);
}

/**
 * The Specific Character Set to write after dcmjs decoded a data set's text: dcmjs writes text as UTF-8 and
 * declares ISO_IR 192, but when every value is ASCII the bytes are the same under the declared set, and a
 * converted instance keeps the declaration it came with.
 */
export function characterSetAfterDecoding(declared: readonly string[], decoded: unknown): string[] {
  if (declared.length === 0 || allTextAscii(decoded)) return [...declared];
  return ['ISO_IR 192'];
}
