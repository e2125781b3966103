/**
 * Ingest failures, each with the DIMSE status and STOW-RS failure reason it maps to,
 * so dimse/ and web/ answer the same way for the same cause.
 */
export abstract class IngestError extends Error {
  abstract readonly dimseStatus: number;
  get failureReason(): number {
    return this.dimseStatus;
  }
}

/** Disk reserve, archive quota or a full disk: PS3.4 0xA700 "Refused: Out of Resources". */
export class OutOfResourcesError extends IngestError {
  readonly dimseStatus = 0xa700;
  override name = 'OutOfResourcesError';
}

/** Dataset does not match what the sender declared: 0xA900 "Data Set does not match SOP Class". */
export class MismatchError extends IngestError {
  readonly dimseStatus = 0xa900;
  override name = 'MismatchError';
}

/** Study Instance UID differs from the one the STOW-RS URL names: PS3.18 failure reason 43265 (0xA901). */
export class StudyMismatchError extends IngestError {
  readonly dimseStatus = 0xa900;
  override get failureReason(): number {
    return 0xa901;
  }
  override name = 'StudyMismatchError';
}

/** Unparseable, truncated, or missing/invalid identifying UIDs: 0xC000 "Cannot understand". */
export class CannotUnderstandError extends IngestError {
  readonly dimseStatus = 0xc000;
  override name = 'CannotUnderstandError';
}

/** The sender went away before the dataset was complete. Nothing was kept. */
export class IngestAbortedError extends IngestError {
  readonly dimseStatus = 0xc000;
  override name = 'IngestAbortedError';
}
