// STOW-RS of the Azure DICOM double (POST stores, PUT upserts), after the v2 conformance
// statement and microsoft/dicom-server's StoreService: the whole body is read first (an aborted
// request stores nothing), then each part is validated and stored in order; the answer is 200 all
// stored, 202 some failed or stored with a warning, 409 none stored, 204 no parts.
import type { FaultState, RequestAction } from './azure-dicom-faults.js';
import type { InstanceStore } from './azure-dicom-store.js';
import { drain, instanceUrl, problem, type Exchange } from './azure-dicom-exchange.js';
import { IMPLICIT_VR_LITTLE_ENDIAN, isValidUid, readInstanceInfo, type InstanceInfo } from './dicom-instance-info.js';
import { FailureReason, WarningReason, storeResponse, type FailedItem, type StoredItem } from './dicom-json.js';
import { MultipartSyntaxError, parseMediaType, readMultipartRelated, type Part } from './multipart-related.js';

export interface StoreTarget {
  partition: string;
  /** StudyInstanceUID from the URL, if any: instances of other studies fail with 43265. */
  studyUid?: string;
  /** PUT: replace an existing instance instead of failing with 45070. */
  upsert: boolean;
}

class Dropped extends Error {}
class TooLarge extends Error {}

export async function handleStow(ex: Exchange, target: StoreTarget, store: InstanceStore, faults: FaultState): Promise<void> {
  const { req, res, rec, reply } = ex;
  const refuse = async (status: number, code: string, message: string) => {
    await drain(ex);
    reply(status, problem(code, message));
  };
  const drop = (status: 'dropped' | 'aborted' = 'dropped') => {
    rec.status = status;
    req.socket.destroy();
  };

  const accept = req.headers.accept;
  if (accept && !acceptsDicomJson(accept)) return refuse(406, 'NotAcceptable', `The Accept header '${accept}' is not supported.`);
  const mediaType = parseMediaType(req.headers['content-type']);
  let boundary: string | undefined;
  if (mediaType?.type === 'multipart/related') {
    if ((mediaType.params.type ?? '').toLowerCase() !== 'application/dicom') {
      return refuse(415, 'UnsupportedMediaType', 'The multipart type parameter must be application/dicom.');
    }
    boundary = mediaType.params.boundary;
    if (!boundary) return refuse(400, 'BadRequest', 'The multipart boundary is missing.');
  } else if (mediaType?.type !== 'application/dicom') {
    return refuse(415, 'UnsupportedMediaType', `The content type '${req.headers['content-type'] ?? ''}' is not supported.`);
  }
  if (target.studyUid !== undefined && !isValidUid(target.studyUid)) {
    return refuse(400, 'BadRequest', `The specified study instance UID '${target.studyUid}' is invalid.`);
  }

  const faultKind = faults.active?.kind;
  const action: RequestAction = faults.forStoreRequest();
  if (action.kind !== 'none' || faultKind === 'reject-instance' || faultKind === 'transient-45071' || faultKind === 'warning') {
    rec.fault = faultKind;
  }
  if (action.kind === 'status') {
    await drain(ex);
    const headers: Record<string, string> = action.retryAfter !== undefined ? { 'retry-after': String(action.retryAfter) } : {};
    return reply(action.status, problem(statusName(action.status), `Injected fault: status ${action.status}.`), headers);
  }
  if (action.kind === 'close') return drop();
  const contentLength = req.headers['content-length'] ? Number(req.headers['content-length']) : undefined;
  const maxBytes = action.kind === 'too-large' ? action.maxBytes : undefined;
  if (maxBytes !== undefined && contentLength !== undefined && contentLength > maxBytes) {
    return refuse(413, 'RequestEntityTooLarge', `The request body of ${contentLength} bytes exceeds ${maxBytes}.`);
  }
  if (action.kind === 'delay' && action.beforeStore) await sleep(action.ms);

  const dropAfter = action.kind === 'drop-mid-body' ? (action.afterBytes ?? Math.max(1, Math.floor((contentLength ?? 2) / 2))) : undefined;
  const parts: Part[] = [];
  try {
    const source = countBytes(ex, dropAfter, maxBytes);
    if (boundary) {
      for await (const part of readMultipartRelated(source, boundary)) parts.push(part);
    } else {
      const chunks: Buffer[] = [];
      for await (const chunk of source) chunks.push(chunk);
      parts.push({ headers: { 'content-type': 'application/dicom' }, body: Buffer.concat(chunks) });
    }
  } catch (err) {
    if (err instanceof Dropped) return drop();
    if (err instanceof TooLarge) return refuse(413, 'RequestEntityTooLarge', `The request body exceeds ${maxBytes} bytes.`);
    if (err instanceof MultipartSyntaxError) return refuse(400, 'BadRequest', `Malformed multipart body: ${err.message}`);
    return drop('aborted'); // the client went away mid-body
  }
  if (dropAfter !== undefined) return drop(); // the body was shorter than the drop point: drop at its end
  if (parts.length === 0) return reply(204);
  if (action.kind === 'too-large' && action.maxInstances !== undefined && parts.length > action.maxInstances) {
    return reply(413, problem('RequestEntityTooLarge', `The request holds ${parts.length} instances; at most ${action.maxInstances} are accepted.`));
  }
  const foreign = parts.find((p) => p.headers['content-type'] && parseMediaType(p.headers['content-type'])?.type !== 'application/dicom');
  if (foreign) return reply(415, problem('UnsupportedMediaType', `A part has content type '${foreign.headers['content-type']}'.`));

  const stored: StoredItem[] = [];
  const failed: FailedItem[] = [];
  for (const part of parts) storePart(ex, part.body, target, store, faults, stored, failed);
  faults.warningRequestDone();

  if (action.kind === 'drop-after-store') return drop();
  if (action.kind === 'delay' && !action.beforeStore) await sleep(action.ms);
  if (res.destroyed) return drop('aborted');
  const status = failed.length === 0 ? (stored.some((s) => s.warningReason !== undefined) ? 202 : 200) : stored.length ? 202 : 409;
  const studyUrl = target.studyUid ? `${ex.origin}${ex.prefix}/studies/${target.studyUid}` : undefined;
  reply(status, storeResponse(stored, failed, studyUrl), {}, 'application/dicom+json');
}

/** Validates and stores one part, in dicom-server's order of checks. */
function storePart(
  ex: Exchange,
  body: Buffer,
  target: StoreTarget,
  store: InstanceStore,
  faults: FaultState,
  stored: StoredItem[],
  failed: FailedItem[],
): void {
  let info: InstanceInfo;
  try {
    info = readInstanceInfo(body);
  } catch {
    failed.push({ failureReason: FailureReason.ValidationFailure });
    ex.rec.instances.push({ outcome: 'failed', failureReason: FailureReason.ValidationFailure });
    return;
  }
  const fail = (reason: number) => {
    failed.push({ sopClassUid: info.sopClassUid, sopUid: info.sopUid, failureReason: reason });
    ex.rec.instances.push({ sopUid: info.sopUid, outcome: 'failed', failureReason: reason });
  };
  const { studyUid, seriesUid, sopUid, sopClassUid } = info;
  // Required: the four UIDs (1–64 chars of [0-9A-Za-z.-], all different) and PatientID (may be empty).
  if (
    !isValidUid(studyUid) || !isValidUid(seriesUid) || !isValidUid(sopUid) || !isValidUid(sopClassUid) || !info.hasPatientId ||
    studyUid === seriesUid || studyUid === sopUid || seriesUid === sopUid
  ) {
    return fail(FailureReason.ValidationFailure);
  }
  if (target.studyUid !== undefined && studyUid.trim().toLowerCase() !== target.studyUid.trim().toLowerCase()) {
    return fail(FailureReason.MismatchStudyInstanceUid);
  }
  const imposed = faults.instanceFailure(sopUid);
  if (imposed !== undefined) return fail(imposed);
  const existing = store.get(target.partition, sopUid);
  if (existing && !target.upsert) return fail(FailureReason.SopInstanceAlreadyExists);
  // dicom-server stores implicit VR data sets with DatasetDoesNotMatchSOPClass (45063); v2 then answers 202.
  const warningReason =
    faults.instanceWarning(sopUid) ?? (info.transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN ? WarningReason.DatasetDoesNotMatchSOPClass : undefined);
  store.put(target.partition, { ...info, studyUid, seriesUid, sopUid, sopClassUid }, body);
  stored.push({ sopClassUid, sopUid, retrieveUrl: instanceUrl(ex, studyUid, seriesUid, sopUid), warningReason });
  ex.rec.instances.push({ sopUid, outcome: existing ? 'replaced' : 'stored', warningReason });
}

/** Yields the request body, counting bytes; throws to drop the socket or at a size limit. */
async function* countBytes(ex: Exchange, dropAfter?: number, maxBytes?: number): AsyncGenerator<Buffer> {
  for await (const chunk of ex.req.iterator({ destroyOnReturn: false })) {
    const buf = chunk as Buffer;
    ex.rec.bytesReceived += buf.length;
    if (dropAfter !== undefined && ex.rec.bytesReceived >= dropAfter) throw new Dropped();
    if (maxBytes !== undefined && ex.rec.bytesReceived > maxBytes) throw new TooLarge();
    yield buf;
  }
}

function acceptsDicomJson(accept: string): boolean {
  return accept.split(',').some((item) => {
    const type = parseMediaType(item)?.type;
    return type === 'application/dicom+json' || type === 'application/json' || type === '*/*' || type === 'application/*';
  });
}

function statusName(status: number): string {
  return status === 429 ? 'TooManyRequests' : status === 503 ? 'ServiceUnavailable' : status >= 500 ? 'InternalServerError' : 'Error';
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
