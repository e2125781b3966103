// Real DICOM peers (DCMTK, Orthanc) and the process/network helpers that drive them.
export { requireTool, requireFile, run, runOk, type RunOptions, type RunResult } from './process.js';
export { freePort, waitForPort } from './net.js';
export { startOrthanc, type OrthancOptions, type OrthancPeer } from './orthanc.js';
export { startStorescp, type StorescpOptions, type StorescpPeer } from './storescp.js';
