import { readFileSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import { characterSetAfterDecoding } from '../dicom/charset.js';
import { declaredCharacterSet } from '../dicom/header.js';
import { dataSetOffset } from './file-meta.js';

const { Dataset } = dimse;

/**
 * An archived instance as a dcmjs-dimse Dataset for an outgoing C-STORE. When the peer accepted the
 * stored transfer syntax the original data set bytes go out untouched; only when dcmjs-dimse has to
 * transcode does it ask for the elements, and the file is parsed then.
 */
export class StoredInstanceDataset extends Dataset {
  private parsed: Record<string, unknown> | undefined;

  constructor(
    private readonly path: string,
    private readonly sopClassUid: string,
    private readonly sopInstanceUid: string,
    transferSyntaxUid: string,
  ) {
    super({}, transferSyntaxUid);
  }

  override getElement(tag: string): string | undefined {
    if (tag === 'SOPClassUID') return this.sopClassUid;
    if (tag === 'SOPInstanceUID') return this.sopInstanceUid;
    return this.getElements()[tag] as string | undefined;
  }

  override getElements(): Record<string, unknown> {
    this.parsed ??= this.parse();
    return this.parsed;
  }

  private parse(): Record<string, unknown> {
    const elements = (Dataset.fromFile(this.path)?.getElements() ?? {}) as Record<string, unknown>;
    if (elements.SpecificCharacterSet !== undefined) {
      // dcmjs re-declares every character set as ISO_IR 192; keep the file's own where that is still true.
      const { SpecificCharacterSet: _rewritten, ...rest } = elements;
      const declared = declaredCharacterSet(readFileSync(this.path));
      elements.SpecificCharacterSet = characterSetAfterDecoding(declared, rest);
    }
    return elements;
  }

  override getDenaturalizedDataset(writeOptions?: Record<string, unknown>, nameMap?: Record<string, unknown>): Buffer {
    if (this.parsed) return super.getDenaturalizedDataset(writeOptions, nameMap);
    const file = readFileSync(this.path);
    return file.subarray(dataSetOffset(file));
  }
}
