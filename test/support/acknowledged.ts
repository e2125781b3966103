// What senders were told was stored: storescu's success responses and STOW-RS answers, as a map from SOP
// Instance UID to the hash of the data set sent. Tests of crashes and full disks check that each is kept.
import { createHash } from 'node:crypto';
import { buildMultipartRelated } from '../doubles/multipart-related.js';
import { requireTool, run } from './process.js';
import type { GeneratedInstance } from './study.js';

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

export const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/**
 * The hash of a Part 10 instance's data set, without its File Meta Information: what a sender's bytes and
 * the stored file must share (over DIMSE the appliance writes the meta header itself).
 */
export function datasetSha(part10: Buffer): string {
  let at = 132;
  while (at + 8 <= part10.length && part10.readUInt16LE(at) === 0x0002) {
    const vr = part10.toString('latin1', at + 4, at + 6);
    at += LONG_VRS.has(vr) ? 12 + part10.readUInt32LE(at + 8) : 8 + part10.readUInt16LE(at + 6);
  }
  return sha256(part10.subarray(at));
}

export interface SendOutcome {
  /** Status words of the refusals, e.g. 0xa700. */
  refusals: number[];
  output: string;
}

/**
 * Sends `paths` (the files of `instances`, in the same order) with one storescu association, going on after
 * a refusal; an instance counts as acknowledged once its success (or warning) response is printed.
 */
export async function storescuAcknowledged(
  port: number, paths: readonly string[], instances: readonly GeneratedInstance[], acknowledged: Map<string, string>,
): Promise<SendOutcome> {
  const result = await run(requireTool('storescu', 'dcmtk'), ['-v', '-nh', '-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(port), ...paths], { timeoutMs: 120_000 });
  const output = `${result.stdout}\n${result.stderr}`;
  const refusals: number[] = [];
  let sending: string | undefined;
  for (const line of output.split('\n')) {
    const file = /Sending file: (.*)$/.exec(line);
    if (file) sending = file[1]!.trim();
    const response = /Received Store Response \(([^)]*)\)/.exec(line);
    if (!response) continue;
    if (/^(Success|Warning)/.test(response[1]!) && sending) {
      const instance = instances[paths.indexOf(sending)];
      if (instance) acknowledged.set(instance.sopInstanceUid, datasetSha(instance.buffer));
    } else {
      // DCMTK names the status ("Refused: OutOfResources") or prints its code.
      const code = /Out ?Of ?Resources/i.test(response[1]!) ? 'a700' : /0x([0-9a-f]{4})/i.exec(response[1]!)?.[1] ?? 'ffff';
      refusals.push(Number.parseInt(code, 16));
    }
    sending = undefined;
  }
  return { refusals, output };
}

export interface StowOutcome {
  /** The HTTP status, or undefined when the request itself failed (the appliance went away). */
  status: number | undefined;
  /** FailureReason of each instance refused. */
  failureReasons: number[];
}

/** Sends `instances` in one STOW-RS request; what the answer lists as stored counts as acknowledged. */
export async function stowAcknowledged(
  api: (path: string, init?: RequestInit) => Promise<Response>, instances: readonly GeneratedInstance[], acknowledged: Map<string, string>,
): Promise<StowOutcome> {
  const { body, contentType } = buildMultipartRelated(instances.map((i) => i.buffer));
  let response: Response;
  try {
    response = await api('/dicom-web/studies', { method: 'POST', body: new Uint8Array(body), headers: { 'content-type': contentType } });
  } catch {
    return { status: undefined, failureReasons: [] };
  }
  type Sequence = { Value?: Array<Record<string, { Value?: Array<string | number> }>> };
  const json = await response.json().catch(() => undefined) as Record<string, Sequence> | undefined;
  if (response.status === 200 || response.status === 202) {
    for (const item of json?.['00081199']?.Value ?? []) {
      const uid = item['00081155']?.Value?.[0];
      const instance = instances.find((i) => i.sopInstanceUid === uid);
      if (instance) acknowledged.set(instance.sopInstanceUid, datasetSha(instance.buffer));
    }
  }
  const failureReasons = (json?.['00081198']?.Value ?? []).map((item) => Number(item['00081197']?.Value?.[0]));
  return { status: response.status, failureReasons };
}
