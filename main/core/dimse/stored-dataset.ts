import { readFileSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import { characterSetAfterDecoding } from '../dicom/charset.js';
import { dataSetOffset } from '../dicom/file-meta.js';
import { declaredCharacterSet } from '../dicom/header.js';
import type { FileBackedDataset } from './dcmjs-dimse-internals.js';

const { Dataset } = dimse;

/**
 * An archived instance as a dcmjs-dimse Dataset for an outgoing C-STORE. When the peer accepted the
 * stored transfer syntax the original data set bytes go out untouched; only when dcmjs-dimse has to
 * transcode does it ask for the elements, and the file is parsed then. `source` is the Part 10 file's
 * path, or its bytes (an instance the archive is still sending, passed on before it is stored here).
 */
export class StoredInstanceDataset extends Dataset implements FileBackedDataset {
  private parsed: Record<string, unknown> | undefined;

  constructor(
    private readonly source: string | Buffer,
    private readonly sopClassUid: string,
    private readonly sopInstanceUid: string,
    private readonly storedSyntax: string,
  ) {
    super({}, storedSyntax);
  }

  override getElement(tag: string): string | undefined {
    if (tag === 'SOPClassUID') return this.sopClassUid;
    if (tag === 'SOPInstanceUID') return this.sopInstanceUid;
    return this.getElements()[tag] as string | undefined;
  }

  /** The file, while its data set goes out untouched (so it can be sent from the file, a PDU at a time). */
  streamedFile(): string | undefined {
    return typeof this.source === 'string' && !this.parsed ? this.source : undefined;
  }

  override getElements(): Record<string, unknown> {
    this.parsed ??= this.parse();
    return this.parsed;
  }

  private bytes(): Buffer {
    return typeof this.source === 'string' ? readFileSync(this.source) : this.source;
  }

  private parse(): Record<string, unknown> {
    const elements = (typeof this.source === 'string'
      ? Dataset.fromFile(this.source)?.getElements() ?? {}
      : new Dataset(this.source.subarray(dataSetOffset(this.source)), this.storedSyntax).getElements()) as Record<string, unknown>;
    if (elements.SpecificCharacterSet !== undefined) {
      // dcmjs re-declares every character set as ISO_IR 192; keep the file's own where that is still true.
      const { SpecificCharacterSet: _rewritten, ...rest } = elements;
      const declared = declaredCharacterSet(this.bytes());
      elements.SpecificCharacterSet = characterSetAfterDecoding(declared, rest);
    }
    return elements;
  }

  override getDenaturalizedDataset(writeOptions?: Record<string, unknown>, nameMap?: Record<string, unknown>): Buffer {
    if (this.parsed) return super.getDenaturalizedDataset(writeOptions, nameMap);
    const file = this.bytes();
    return file.subarray(dataSetOffset(file));
  }
}
