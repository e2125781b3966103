/** DIMSE statuses we answer with (PS3.4 / PS3.7 Annex C). */
export const DimseStatus = {
  Success: 0x0000,
  Cancel: 0xfe00,
  Pending: 0xff00,
  OutOfResources: 0xa700,
  DataSetDoesNotMatchSopClass: 0xa900,
  CannotUnderstand: 0xc000,
  /** C-FIND: identifier does not match SOP class. */
  IdentifierDoesNotMatch: 0xa900,
  /** C-FIND: unable to process. */
  UnableToProcess: 0xc001,
  /** C-MOVE/C-GET: out of resources, unable to calculate number of matches. */
  OutOfResourcesMatches: 0xa701,
  /** C-MOVE/C-GET: out of resources, unable to perform sub-operations. */
  OutOfResourcesSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  /** C-MOVE/C-GET: sub-operations complete, one or more failures or warnings. */
  SubOperationsCompleteWithFailures: 0xb000,
  /** N-services (PS3.7 C.5 and Annex C). */
  InvalidAttributeValue: 0x0106,
  ProcessingFailure: 0x0110,
  DuplicateSopInstance: 0x0111,
  NoSuchSopInstance: 0x0112,
  InvalidArgumentValue: 0x0115,
  NoSuchSopClass: 0x0118,
  MissingAttribute: 0x0120,
  NoSuchAction: 0x0123,
} as const;

/** Error Comment (0000,0902) is LO: at most 64 characters. */
export function errorComment(message: string): string {
  return message.replace(/[\\\r\n]/g, ' ').slice(0, 64);
}
