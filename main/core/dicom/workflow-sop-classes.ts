/** The workflow SOP classes the listener serves besides storage and query/retrieve (PS3.4 Annexes F, J, K). */
export const WORKFLOW_SOP_CLASSES = {
  /** PS3.4 Annex J. */
  storageCommitmentPushModel: '1.2.840.10008.1.20.1',
  /** PS3.4 Annex K, K.6.1. */
  modalityWorklistFind: '1.2.840.10008.5.1.4.31',
  /** PS3.4 Annex F. */
  modalityPerformedProcedureStep: '1.2.840.10008.3.1.2.3.3',
} as const;

/** The well-known SOP Instance of the Storage Commitment Push Model (PS3.4 J.3.5). */
export const STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE = '1.2.840.10008.1.20.1.1';

/** Action Type ID of "Request Storage Commitment" (PS3.4 J.3.2.1) and the Event Type IDs of its report (J.3.3.1). */
export const StorageCommitmentIds = {
  requestAction: 1,
  allCommitted: 1,
  someFailed: 2,
} as const;

/** Failure Reason (0008,1197) values of a Failed SOP Sequence item (PS3.4 J.3.3.1.1, PS3.3 C.14). */
export const CommitmentFailureReason = {
  processingFailure: 0x0110,
  noSuchObjectInstance: 0x0112,
  classInstanceConflict: 0x0119,
} as const;

export type CommitmentFailureCode = (typeof CommitmentFailureReason)[keyof typeof CommitmentFailureReason];
