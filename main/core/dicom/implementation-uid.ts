/**
 * Who we are in what we write (PS3.7 D.3.3.2, PS3.10 7.1): the Implementation Class UID and Version Name
 * of our associations (dimse/implementation.ts) and of the File Meta Information of files we build.
 */

/** Ours: a UUID-derived root (PS3.5 B.2), fixed so files from every version can be told apart by name only. */
export const IMPLEMENTATION_CLASS_UID = '2.25.271936471235240389361726404218383760211';
export const IMPLEMENTATION_VERSION_NAME = 'DICOM_EDGE_01';
