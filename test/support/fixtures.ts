// DICOM test instances generated in memory (dcmjs) and re-encoded with DCMTK / dcmjs-codecs.
export { newUid } from './uid.js';
export {
  makeInstance,
  makeMultiFrame,
  SOP_CLASS_UIDS,
  NATIVE_TRANSFER_SYNTAXES,
  type InstanceOptions,
  type NativeTransferSyntaxUid,
} from './instance.js';
export { makeStudy, writeInstances, type GeneratedInstance, type StudyOptions } from './study.js';
export {
  TRANSFER_SYNTAX_UIDS,
  convertTransferSyntax,
  makeInstanceInSyntax,
  readTransferSyntaxUid,
  type InstanceInSyntax,
  type SyntaxName,
} from './transfer-syntax.js';
