import {
  isPrivateSopClass,
  isStandardStorageSopClass,
  QUERY_RETRIEVE_SOP_CLASSES,
  VERIFICATION_SOP_CLASS,
} from '../dicom/storage-sop-classes.js';
import { TransferSyntax, UNCOMPRESSED_SYNTAXES } from '../dicom/transfer-syntax.js';
import { WORKFLOW_SOP_CLASSES } from '../dicom/workflow-sop-classes.js';

export type ContextDecision =
  | { kind: 'accept'; transferSyntaxUid: string }
  | { kind: 'abstract-syntax-not-supported' }
  | { kind: 'transfer-syntaxes-not-supported' };

export interface ContextPolicy {
  acceptPrivateSopClasses: boolean;
}

const QUERY_RETRIEVE = new Set<string>(Object.values(QUERY_RETRIEVE_SOP_CLASSES));
/** Services whose messages carry only small data sets, read and written by dcmjs. */
const MESSAGE_SERVICES = new Set<string>([VERIFICATION_SOP_CLASS, ...QUERY_RETRIEVE, WORKFLOW_SOP_CLASSES.storageCommitmentPushModel,
  WORKFLOW_SOP_CLASSES.modalityWorklistFind, WORKFLOW_SOP_CLASSES.modalityPerformedProcedureStep]);

/**
 * Transfer syntaxes whose data set the archive can index: the uncompressed and deflated ones, and
 * every encapsulated one (JPEG family incl. retired processes, JPEG-LS, JPEG 2000, HTJ2K, JPEG XL,
 * MPEG/HEVC, RLE, deflated image frames, encapsulated uncompressed), all explicit VR little endian
 * outside Pixel Data.
 */
const STORABLE_SYNTAX = /^1\.2\.840\.10008\.1\.2(\.1(\.98|\.99)?|\.2|\.4\.\d+(\.1)?|\.5|\.8\.1)?$/;

/** Message data sets (identifiers) are read and written by dcmjs, which knows the three uncompressed syntaxes. */
const MESSAGE_SYNTAX_PREFERENCE = [
  TransferSyntax.ExplicitVRLittleEndian,
  TransferSyntax.ImplicitVRLittleEndian,
  TransferSyntax.ExplicitVRBigEndian,
];

function preferredUncompressed(proposed: readonly string[]): string | undefined {
  return MESSAGE_SYNTAX_PREFERENCE.find((ts) => proposed.includes(ts));
}

/**
 * Storage: the sender's syntax as it is, in the sender's order of preference, compressed or not;
 * when the first usable proposal is uncompressed, Explicit VR Little Endian wins among the
 * uncompressed ones proposed.
 */
function storageSyntax(proposed: readonly string[]): string | undefined {
  const first = proposed.find((ts) => STORABLE_SYNTAX.test(ts));
  if (first === undefined) return undefined;
  if (UNCOMPRESSED_SYNTAXES.includes(first)) return preferredUncompressed(proposed);
  return first;
}

export function decideContext(abstractSyntaxUid: string, proposed: readonly string[], policy: ContextPolicy): ContextDecision {
  const syntaxes = proposed.map((ts) => ts.replace(/\0/g, '').trim());
  let chosen: string | undefined;
  if (MESSAGE_SERVICES.has(abstractSyntaxUid)) {
    chosen = preferredUncompressed(syntaxes);
  } else if (isStandardStorageSopClass(abstractSyntaxUid) || (policy.acceptPrivateSopClasses && isPrivateSopClass(abstractSyntaxUid))) {
    chosen = storageSyntax(syntaxes);
  } else {
    return { kind: 'abstract-syntax-not-supported' };
  }
  return chosen ? { kind: 'accept', transferSyntaxUid: chosen } : { kind: 'transfer-syntaxes-not-supported' };
}
