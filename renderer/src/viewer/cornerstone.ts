/**
 * One-time setup of cornerstone, its tools and the WADO image loader (wadors: image IDs against the local
 * server, with the session's auth header). The loader decodes in web workers with its embedded
 * WebAssembly codecs (JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE), started from a same-origin URL
 * (see startDecodeWorkersFromTheirUrl); nothing is fetched from another origin.
 */
import cornerstone from 'cornerstone-core';
import cornerstoneMath from 'cornerstone-math';
import cornerstoneTools from 'cornerstone-tools';
import loader from 'cornerstone-wado-image-loader';
import dicomParser from 'dicom-parser';
import decodeWorkerUrl from 'cornerstone-wado-image-loader/dist/index.worker.bundle.min.worker.js?url';
import type { DicomJson } from '../../../main/core/contract/dicom-json';
import { authHeaders, dicomWebRoot } from '../api';

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
  startDecodeWorkersFromTheirUrl();
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

/**
 * The loader starts its decode worker from a blob: URL, and a blob: worker inherits the page's CSP, under
 * which the embind glue of the JPEG baseline, JPEG-LS and JPEG 2000 codecs cannot run (`new Function`).
 * The same worker script is built as an asset and started from its own URL instead; the server gives
 * that one response a policy allowing eval inside the worker (web/static-ui.ts DECODE_WORKER_CSP).
 */
function startDecodeWorkersFromTheirUrl(): void {
  const NativeWorker = window.Worker;
  window.Worker = class DecodeWorker extends NativeWorker {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(String(url).startsWith('blob:') ? new URL(decodeWorkerUrl, location.href) : url, options);
    }
  };
}

export function frameImageId(studyUid: string, seriesUid: string, sopUid: string, frame: number): string {
  return `wadors:${dicomWebRoot()}/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}/frames/${frame}`;
}

export function registerMetadata(imageId: string, metadata: DicomJson): void {
  loader.wadors.metaDataManager.add(imageId, metadata);
}

export { cornerstone, cornerstoneTools };
