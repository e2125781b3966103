import { readFileSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
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
    this.parsed ??= Dataset.fromFile(this.path)?.getElements() ?? {};
    return this.parsed;
  }

  override getDenaturalizedDataset(writeOptions?: Record<string, unknown>, nameMap?: Record<string, unknown>): Buffer {
    if (this.parsed) return super.getDenaturalizedDataset(writeOptions, nameMap);
    const file = readFileSync(this.path);
    return file.subarray(dataSetOffset(file));
  }
}
