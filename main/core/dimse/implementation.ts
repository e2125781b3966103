/**
 * Who we are on the wire (PS3.7 D.3.3.2): the Implementation Class UID and Version Name of every
 * A-ASSOCIATE-RQ and -AC we send (listener, C-MOVE sub-operations, C-ECHO checks) and of the File Meta
 * Information we write. dcmjs-dimse keeps these in static fields, set here once when the module loads.
 */
import dimse from 'dcmjs-dimse';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../dicom/implementation-uid.js';

export { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME };

/** The largest P-DATA-TF PDU we take (conformance statement), also what we announce to a peer that sets no limit. */
export const MAX_PDU_LENGTH = 262144;

dimse.Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
dimse.Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
dimse.Implementation.setMaxPduLength(MAX_PDU_LENGTH);
