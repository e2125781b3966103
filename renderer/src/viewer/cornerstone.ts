/**
 * One-time setup of cornerstone, its tools and the WADO image loader (wadors: image IDs against the local
 * server, with the session's auth header). The loader decodes in blob: web workers with its embedded
 * WebAssembly codecs (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE), which the CSP allows
 * (worker-src blob:, script-src 'wasm-unsafe-eval'); nothing is fetched from another origin.
 */
import cornerstone from 'cornerstone-core';
import cornerstoneMath from 'cornerstone-math';
import cornerstoneTools from 'cornerstone-tools';
import loader from 'cornerstone-wado-image-loader';
import dicomParser from 'dicom-parser';
import { authHeaders, dicomWebRoot, type DicomJson } from '../api';

let ready = false;

export function setupCornerstone(): void {
  if (ready) return;
  ready = true;
  loader.external.cornerstone = cornerstone;
  loader.external.dicomParser = dicomParser;
  loader.configure({
    beforeSend: (xhr) => {
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    },
  });
  loader.webWorkerManager.initialize({
    maxWebWorkers: Math.max(1, Math.min(4, (navigator.hardwareConcurrency || 2) - 1)),
    startWebWorkersOnDemand: true,
    taskConfiguration: { decodeTask: { initializeCodecsOnStartup: false, strict: false } },
  });
  cornerstone.imageCache.setMaximumSizeBytes(1536 * 1024 * 1024);
  cornerstoneTools.external.cornerstone = cornerstone;
  cornerstoneTools.external.cornerstoneMath = cornerstoneMath;
  cornerstoneTools.init({ showSVGCursors: false, touchEnabled: false, globalToolSyncEnabled: false });
}

export function frameImageId(studyUid: string, seriesUid: string, sopUid: string, frame: number): string {
  return `wadors:${dicomWebRoot()}/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}/frames/${frame}`;
}

export function registerMetadata(imageId: string, metadata: DicomJson): void {
  loader.wadors.metaDataManager.add(imageId, metadata);
}

export { cornerstone, cornerstoneTools };
