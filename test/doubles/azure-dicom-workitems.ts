// The Azure DICOM service's worklist (UPS-RS, PS3.18 §11, after the v2 conformance statement) in the double:
// Create (POST /workitems[?{uid}]), Search (GET /workitems?…), Retrieve (GET /workitems/{uid}), Update
// (POST /workitems/{uid}?{transaction-uid}) and Change State (PUT /workitems/{uid}/state), with the state
// table of PS3.4 CC.1.1 and the Transaction UID as the owner's lock: SCHEDULED → IN PROGRESS records a new
// one, every later change must carry it, and no answer ever shows it. COMPLETED and CANCELED need the
// final-state attributes (PS3.4 Table CC.2.5-3, codes P and X) set by an Update first. Status codes and Warning headers as PS3.18 11.7.3 gives them. A test can replace the next
// answers (garbage, 409, …) with `injectAnswer`; those requests change nothing.
import { tagOf, entryOf } from '../../main/core/dicom/dictionary.js';
import type { DicomJson } from '../../main/core/dicom/json-model.js';
import { drain, problem, type Exchange } from './azure-dicom-exchange.js';
import { readBody } from './http-server.js';

export type UpsState = 'SCHEDULED' | 'IN PROGRESS' | 'COMPLETED' | 'CANCELED';
const UPS_STATES: readonly UpsState[] = ['SCHEDULED', 'IN PROGRESS', 'COMPLETED', 'CANCELED'];

const TAG = {
  SOPInstanceUID: tagOf('SOPInstanceUID'),
  SOPClassUID: tagOf('SOPClassUID'),
  ProcedureStepState: tagOf('ProcedureStepState'),
  TransactionUID: tagOf('TransactionUID'),
};

/**
 * Final state requirements (PS3.4 Table CC.2.5-3): P, needed before COMPLETED, and X, before CANCELED, as paths
 * that must have a value. (The R ones are required at creation already.)
 */
const FINAL_STATE: Record<'COMPLETED' | 'CANCELED', string[][]> = {
  COMPLETED: [
    ['UnifiedProcedureStepPerformedProcedureSequence'],
    ['UnifiedProcedureStepPerformedProcedureSequence', 'PerformedStationNameCodeSequence'],
    ['UnifiedProcedureStepPerformedProcedureSequence', 'PerformedProcedureStepStartDateTime'],
    ['UnifiedProcedureStepPerformedProcedureSequence', 'PerformedWorkitemCodeSequence'],
    ['UnifiedProcedureStepPerformedProcedureSequence', 'PerformedProcedureStepEndDateTime'],
    ['UnifiedProcedureStepPerformedProcedureSequence', 'OutputInformationSequence'],
  ],
  CANCELED: [
    ['ProcedureStepProgressInformationSequence'],
    ['ProcedureStepProgressInformationSequence', 'ProcedureStepCancellationDateTime'],
    ['ProcedureStepProgressInformationSequence', 'ProcedureStepDiscontinuationReasonCodeSequence'],
  ],
};
/** UPS Push SOP Class: the SOP Class UID of every workitem (PS3.4 CC.3.1). */
export const UPS_PUSH_SOP_CLASS = '1.2.840.10008.5.1.4.34.6.1';

/**
 * Return keys a search answers without includefield (PS3.4 Table CC.2.5-3, return key type 1 and 2, as far as
 * the double keeps them); includefield adds others, `all` gives everything but the Transaction UID.
 */
const DEFAULT_RETURN = [
  'SpecificCharacterSet', 'SOPClassUID', 'SOPInstanceUID', 'ScheduledProcedureStepPriority', 'ProcedureStepLabel', 'WorklistLabel',
  'ScheduledStationNameCodeSequence', 'ScheduledStationClassCodeSequence', 'ScheduledStationGeographicLocationCodeSequence',
  'ScheduledHumanPerformersSequence', 'ScheduledProcedureStepStartDateTime', 'ExpectedCompletionDateTime', 'ScheduledWorkitemCodeSequence',
  'InputReadinessState', 'InputInformationSequence', 'StudyInstanceUID', 'PatientName', 'PatientID', 'IssuerOfPatientID',
  'PatientBirthDate', 'PatientSex', 'AdmissionID', 'ReferencedRequestSequence', 'ProcedureStepState',
].map(tagOf);

export interface StateChangeRecord {
  workitemUid: string;
  from: UpsState | undefined;
  requested: string;
  transactionUid: string;
  status: number;
  warning?: string;
}

export interface InjectedAnswer {
  /** Only requests with this method (any when absent). */
  method?: 'GET' | 'POST' | 'PUT';
  status: number;
  /** Sent as it is (e.g. 'not json{'); none when absent. */
  body?: string;
  contentType?: string;
  /** How many answers to replace (default 1). */
  times?: number;
}

interface Workitem {
  uid: string;
  dataset: DicomJson;
  state: UpsState;
  transactionUid?: string;
}

/** Searching, parsing and state-table knowledge of the double's worklist; the HTTP side is handleWorkitems. */
export class WorkitemStore {
  private readonly items = new Map<string, Workitem>();
  /** Every Change State request that reached the state table, in order. */
  readonly stateChanges: StateChangeRecord[] = [];
  /** Every Update Workitem that took effect, in order. */
  readonly updates: Array<{ workitemUid: string; transactionUid: string; tags: string[] }> = [];
  private readonly injected: Array<InjectedAnswer & { left: number }> = [];
  private readonly drops: Array<{ method: string; left: number }> = [];

  /** Puts a SCHEDULED workitem in the worklist, as another system would have created it. */
  seed(dataset: DicomJson): string {
    const result = this.create(dataset, undefined);
    if ('error' in result) throw new Error(result.error);
    return result.uid;
  }

  state(uid: string): UpsState | undefined {
    return this.items.get(uid)?.state;
  }

  /** The owner's Transaction UID, which no answer of the double shows. */
  transactionUid(uid: string): string | undefined {
    return this.items.get(uid)?.transactionUid;
  }

  /** State changes that took effect (200 without a warning), for one workitem or all. */
  appliedChanges(uid?: string): StateChangeRecord[] {
    return this.stateChanges.filter((c) => c.status === 200 && !c.warning && (uid === undefined || c.workitemUid === uid));
  }

  /** The next answer(s) to a workitem request of this method are this one instead; nothing changes. */
  injectAnswer(answer: InjectedAnswer): void {
    this.injected.push({ ...answer, left: answer.times ?? 1 });
  }

  /** The next request(s) of this method are carried out, then the connection is cut instead of answering (a lost answer). */
  dropAnswerAfterApplying(method: 'POST' | 'PUT', times = 1): void {
    this.drops.push({ method, left: times });
  }

  takeDrop(method: string): boolean {
    const drop = this.drops.find((d) => d.method === method);
    if (!drop) return false;
    drop.left -= 1;
    if (drop.left <= 0) this.drops.splice(this.drops.indexOf(drop), 1);
    return true;
  }

  /** Removes a workitem (as if deleted upstream or claimed by another system and moved on). */
  remove(uid: string): void {
    this.items.delete(uid);
  }

  clear(): void {
    this.items.clear();
    this.stateChanges.length = 0;
    this.updates.length = 0;
    this.injected.length = 0;
    this.drops.length = 0;
  }

  takeInjected(method: string): InjectedAnswer | undefined {
    const index = this.injected.findIndex((a) => a.method === undefined || a.method === method);
    if (index < 0) return undefined;
    const answer = this.injected[index]!;
    answer.left -= 1;
    if (answer.left <= 0) this.injected.splice(index, 1);
    return answer;
  }

  create(dataset: DicomJson, uidFromUrl: string | undefined): { uid: string } | { error: string; status: number } {
    const inBody = firstString(dataset, TAG.SOPInstanceUID);
    const uid = uidFromUrl ?? inBody;
    if (!uid) return { status: 400, error: 'The workitem UID is missing: give it in the URL or as SOPInstanceUID.' };
    if (!/^[0-9]+(\.[0-9]+)*$/.test(uid) || uid.length > 64) return { status: 400, error: `The workitem UID '${uid}' is not a valid UID.` };
    if (uidFromUrl && inBody && inBody !== uidFromUrl) return { status: 400, error: 'SOPInstanceUID in the dataset differs from the UID in the URL.' };
    const state = firstString(dataset, TAG.ProcedureStepState);
    if (state !== 'SCHEDULED') return { status: 400, error: `ProcedureStepState must be SCHEDULED when a workitem is created, not '${state ?? ''}'.` };
    if (dataset[TAG.TransactionUID]) return { status: 400, error: 'TransactionUID must not be present when a workitem is created.' };
    if (this.items.has(uid)) return { status: 409, error: `The workitem ${uid} already exists.` };
    const stored: DicomJson = { ...dataset, [TAG.SOPInstanceUID]: { vr: 'UI', Value: [uid] }, [TAG.SOPClassUID]: { vr: 'UI', Value: [UPS_PUSH_SOP_CLASS] } };
    this.items.set(uid, { uid, dataset: stored, state: 'SCHEDULED' });
    return { uid };
  }

  retrieve(uid: string): DicomJson | undefined {
    const item = this.items.get(uid);
    return item ? this.visible(item) : undefined;
  }

  /** Matching (exact, '*'/'?' wildcards, DA/DT/TM ranges) on top-level or sequence-item attributes; throws SearchError. */
  search(params: URLSearchParams): DicomJson[] {
    const includes: string[] = [];
    const filters: Array<{ path: string[]; value: string; vr: string }> = [];
    for (const [name, value] of params) {
      if (name === 'limit' || name === 'offset' || name === 'fuzzymatching') continue;
      if (name === 'includefield') {
        for (const field of value.split(',')) includes.push(field === 'all' ? 'all' : attributePath(field).at(-1)!);
        continue;
      }
      const path = attributePath(name);
      if (path.at(-1) === TAG.TransactionUID) throw new SearchError('TransactionUID cannot be a matching key.');
      filters.push({ path, value, vr: vrOfTag(path.at(-1)!) });
    }
    const returned = new Set([...DEFAULT_RETURN, ...filters.map((f) => f.path[0]!), ...includes]);
    return [...this.items.values()]
      .filter((item) => filters.every((f) => f.value === '' || valuesAt(item.dataset, f.path).some((v) => matchesValue(f.value, v, f.vr))))
      .map((item) => {
        const visible = this.visible(item);
        if (returned.has('all')) return visible;
        return Object.fromEntries(Object.entries(visible).filter(([tag]) => returned.has(tag.toUpperCase())));
      });
  }

  /** Change UPS State (PS3.4 CC.2.1.3, Table CC.1.1-2) as PS3.18 11.7.3 answers it. */
  changeState(uid: string, body: DicomJson): { status: number; warning?: string; error?: string } {
    const requested = firstString(body, TAG.ProcedureStepState);
    const transactionUid = firstString(body, TAG.TransactionUID) ?? '';
    if (requested === undefined) return { status: 400, error: 'ProcedureStepState is missing.' };
    if (!['IN PROGRESS', 'COMPLETED', 'CANCELED'].includes(requested)) {
      return { status: 400, error: `ProcedureStepState '${requested}' cannot be requested; use IN PROGRESS, COMPLETED or CANCELED.` };
    }
    const item = this.items.get(uid);
    if (!item) return { status: 404, error: `The workitem ${uid} was not found.` };
    let outcome = decide(item, requested as UpsState, transactionUid);
    if (outcome.status === 200 && !outcome.warning && (requested === 'COMPLETED' || requested === 'CANCELED')) {
      const missing = FINAL_STATE[requested].filter((path) => !hasValue(item.dataset, path.map((keyword) => tagOf(keyword))));
      if (missing.length > 0) {
        // C304: the final state requirements are not met.
        outcome = { status: 409, warning: 'The submitted request is inconsistent with the current state of the Workitem.',
          error: `The workitem does not meet the final state requirements of ${requested}: missing ${missing.map((path) => path.join('.')).join(', ')}.` };
      }
    }
    this.stateChanges.push({ workitemUid: uid, from: item.state, requested, transactionUid, status: outcome.status, warning: outcome.warning });
    if (outcome.status === 200 && !outcome.warning) {
      if (requested === 'IN PROGRESS') item.transactionUid = transactionUid;
      item.state = requested as UpsState;
      item.dataset = { ...item.dataset, [TAG.ProcedureStepState]: { vr: 'CS', Value: [requested] } };
    }
    return outcome;
  }

  /** Update Workitem (PS3.18 11.6): a SCHEDULED one without a Transaction UID, an IN PROGRESS one with its owner's. */
  update(uid: string, transactionUid: string | undefined, changes: DicomJson): { status: number; warning?: string; error?: string } {
    const item = this.items.get(uid);
    if (!item) return { status: 404, error: `The workitem ${uid} was not found.` };
    if (item.state === 'COMPLETED' || item.state === 'CANCELED') {
      return { status: 400, warning: 'The submitted request is inconsistent with the current state of the Workitem.' };
    }
    if (item.state === 'SCHEDULED' && transactionUid) return { status: 400, warning: 'The Transaction UID is incorrect.' };
    if (item.state === 'IN PROGRESS' && !transactionUid) return { status: 400, warning: 'The Transaction UID is missing.' };
    if (item.state === 'IN PROGRESS' && transactionUid !== item.transactionUid) return { status: 400, warning: 'The Transaction UID is incorrect.' };
    if (changes[TAG.ProcedureStepState]) {
      return { status: 409, warning: 'The submitted request is inconsistent with the current state of the Workitem.', error: 'ProcedureStepState is changed by Change State only.' };
    }
    if (changes[TAG.TransactionUID] || changes[TAG.SOPInstanceUID]) return { status: 400, error: 'TransactionUID and SOPInstanceUID cannot be updated.' };
    item.dataset = { ...item.dataset, ...changes };
    this.updates.push({ workitemUid: uid, transactionUid: transactionUid ?? '', tags: Object.keys(changes) });
    return { status: 200 };
  }

  private visible(item: Workitem): DicomJson {
    const { [TAG.TransactionUID]: _hidden, ...rest } = item.dataset;
    return { ...rest, [TAG.ProcedureStepState]: { vr: 'CS', Value: [item.state] } };
  }
}

export class SearchError extends Error {}

/** The state table: what a Change State request does to a workitem in its present state. */
function decide(item: Workitem, requested: UpsState, transactionUid: string): { status: number; warning?: string; error?: string } {
  const missing = { status: 400, warning: 'The Transaction UID is missing.' };
  const incorrect = { status: 400, warning: 'The Transaction UID is incorrect.' };
  const inconsistent = { status: 409, warning: 'The submitted request is inconsistent with the current state of the Workitem.' };
  if (!transactionUid) return missing;
  switch (item.state) {
    case 'SCHEDULED':
      // C310: only a claimed (IN PROGRESS) workitem can be completed or canceled by Change State.
      return requested === 'IN PROGRESS' ? { status: 200 } : { status: 409, warning: 'The Target URI did not reference a claimed Workitem.' };
    case 'IN PROGRESS':
      if (requested === 'IN PROGRESS') return inconsistent; // C302: already IN PROGRESS
      return transactionUid === item.transactionUid ? { status: 200 } : incorrect; // C301
    case 'COMPLETED':
    case 'CANCELED':
      if (requested !== item.state) return inconsistent; // C300: may no longer be updated
      if (transactionUid !== item.transactionUid) return incorrect;
      // B304 / B306: already in the requested state.
      return { status: 200, warning: `The UPS is already in the requested state of ${item.state}.` };
  }
}

/** Serves …/workitems[/…]; `segments` start with 'workitems'. */
export async function handleWorkitems(ex: Exchange, store: WorkitemStore, segments: string[], url: URL): Promise<void> {
  const method = ex.req.method ?? 'GET';
  const [, uid, action, ...rest] = segments;
  const warn = (text: string) => ({ warning: `299 ${ex.origin}: ${text}` });
  const injected = store.takeInjected(method);
  if (injected) {
    await drain(ex);
    ex.rec.status = injected.status;
    ex.res.writeHead(injected.status, { 'content-type': injected.contentType ?? 'application/dicom+json', 'content-length': Buffer.byteLength(injected.body ?? '') });
    ex.res.end(injected.body ?? '');
    return;
  }
  const base = `${ex.origin}${ex.prefix}/workitems`;
  if (store.takeDrop(method)) {
    // Carried out as usual; only the answer is lost.
    ex.reply = (status) => {
      ex.rec.status = 'dropped';
      ex.rec.fault = `drop-after-apply (${status})`;
      ex.res.socket?.destroy();
    };
  }

  if (method === 'POST' && uid === undefined) {
    if (!isDicomJson(ex.req.headers['content-type'])) {
      await drain(ex);
      return ex.reply(415, problem('UnsupportedMediaType', `Content-Type '${ex.req.headers['content-type'] ?? ''}' is not application/dicom+json.`));
    }
    const dataset = await readDataset(ex);
    if (typeof dataset === 'string') return ex.reply(400, problem('BadRequest', dataset));
    const result = store.create(dataset, workitemUidFromQuery(url.searchParams));
    if ('error' in result) return ex.reply(result.status, problem(result.status === 409 ? 'Conflict' : 'BadRequest', result.error));
    const location = `${base}/${result.uid}`;
    return ex.reply(201, undefined, { location, 'content-location': location });
  }
  if (method === 'GET' && uid === undefined) {
    await drain(ex);
    const limit = url.searchParams.has('limit') ? Number(url.searchParams.get('limit')) : 100;
    const offset = url.searchParams.has('offset') ? Number(url.searchParams.get('offset')) : 0;
    if (!Number.isInteger(limit) || limit < 1 || limit > 200 || !Number.isInteger(offset) || offset < 0) {
      return ex.reply(400, problem('BadRequest', 'limit must be 1..200 and offset ≥ 0.'));
    }
    let found: DicomJson[];
    try {
      found = store.search(url.searchParams);
    } catch (error) {
      if (error instanceof SearchError) return ex.reply(400, problem('BadRequest', error.message));
      throw error;
    }
    const page = found.slice(offset, offset + limit);
    if (page.length === 0) return ex.reply(204);
    return ex.reply(200, page, {}, 'application/dicom+json');
  }
  if (uid === undefined || rest.length > 0 || !/^[0-9]+(\.[0-9]+)*$/.test(uid)) {
    await drain(ex);
    return ex.reply(uid === undefined ? 405 : 404, problem('NotFound', 'Unknown resource.'));
  }
  if (method === 'GET' && action === undefined) {
    await drain(ex);
    const dataset = store.retrieve(uid);
    if (!dataset) return ex.reply(404, problem('NotFound', `The workitem ${uid} was not found.`));
    return ex.reply(200, [dataset], {}, 'application/dicom+json');
  }
  if (method === 'POST' && action === undefined) {
    if (!isDicomJson(ex.req.headers['content-type'])) {
      await drain(ex);
      return ex.reply(415, problem('UnsupportedMediaType', `Content-Type '${ex.req.headers['content-type'] ?? ''}' is not application/dicom+json.`));
    }
    const dataset = await readDataset(ex);
    if (typeof dataset === 'string') return ex.reply(400, problem('BadRequest', dataset));
    // The Transaction UID: `?transaction=UID` (the URI template's) or `?UID` (the Azure form).
    const transactionUid = url.searchParams.get('transaction') ?? workitemUidFromQuery(url.searchParams);
    const outcome = store.update(uid, transactionUid, dataset);
    const headers = outcome.warning ? warn(outcome.warning) : {};
    if (outcome.status === 200) return ex.reply(200, undefined, { ...headers, 'content-location': `${base}/${uid}` });
    return ex.reply(outcome.status, problem(outcome.status === 404 ? 'NotFound' : outcome.status === 409 ? 'Conflict' : 'BadRequest',
      outcome.error ?? outcome.warning ?? ''), headers);
  }
  if (method === 'PUT' && action === 'state') {
    if (!isDicomJson(ex.req.headers['content-type'])) {
      await drain(ex);
      return ex.reply(415, problem('UnsupportedMediaType', `Content-Type '${ex.req.headers['content-type'] ?? ''}' is not application/dicom+json.`));
    }
    const dataset = await readDataset(ex);
    if (typeof dataset === 'string') return ex.reply(400, problem('BadRequest', dataset));
    const outcome = store.changeState(uid, dataset);
    const headers = outcome.warning ? warn(outcome.warning) : {};
    if (outcome.status === 200) return ex.reply(200, undefined, headers);
    return ex.reply(outcome.status, problem(outcome.status === 404 ? 'NotFound' : outcome.status === 409 ? 'Conflict' : 'BadRequest',
      outcome.error ?? outcome.warning ?? ''), headers);
  }
  await drain(ex);
  return ex.reply(405, problem('MethodNotAllowed', `${method} is not supported here.`));
}

/** `?1.2.3` (the Azure form) or `?workitem=1.2.3` (the URI template's). */
function workitemUidFromQuery(params: URLSearchParams): string | undefined {
  if (params.has('workitem')) return params.get('workitem') ?? undefined;
  const [first] = [...params.keys()];
  return first !== undefined && params.get(first) === '' ? first : undefined;
}

function isDicomJson(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/dicom+json' || type === 'application/json';
}

/** One DICOM JSON dataset: an object, or an array holding exactly one; otherwise the reason. */
async function readDataset(ex: Exchange): Promise<DicomJson | string> {
  const bytes = await readBody(ex.req);
  ex.rec.bytesReceived += bytes.length;
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return 'The request body is not JSON.';
  }
  if (Array.isArray(parsed)) parsed = parsed.length === 1 ? parsed[0] : undefined;
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return 'The request body must be one DICOM JSON dataset.';
  return parsed as DicomJson;
}

/** 'ScheduledStationNameCodeSequence.CodeValue' or '00404025.00080100' → tags. */
function attributePath(name: string): string[] {
  return name.split('.').map((part) => {
    if (/^[0-9a-fA-F]{8}$/.test(part)) return part.toUpperCase();
    try {
      return tagOf(part);
    } catch {
      throw new SearchError(`Unknown query parameter or attribute '${name}'.`);
    }
  });
}

function vrOfTag(tag: string): string {
  for (const keyword of KNOWN_KEYWORDS) if (tagOf(keyword) === tag) return entryOf(keyword).vr;
  return '';
}
const KNOWN_KEYWORDS = ['ScheduledProcedureStepStartDateTime', 'ExpectedCompletionDateTime', 'PatientBirthDate'];

function valuesAt(dataset: DicomJson, path: string[]): string[] {
  const [head, ...tail] = path;
  const element = (dataset as Record<string, { Value?: unknown[] } | undefined>)[head!];
  const values = element?.Value ?? [];
  if (tail.length === 0) {
    return values.map((v) => (v && typeof v === 'object' ? String((v as { Alphabetic?: string }).Alphabetic ?? '') : String(v)));
  }
  return values.flatMap((item) => (item && typeof item === 'object' ? valuesAt(item as DicomJson, tail) : []));
}

/** Whether the attribute at `path` (tags, through the first item of each sequence) has a value. */
function hasValue(dataset: DicomJson, path: string[]): boolean {
  const [head, ...tail] = path;
  const values = (dataset as Record<string, { Value?: unknown[] } | undefined>)[head!]?.Value ?? [];
  if (values.length === 0) return false;
  if (tail.length === 0) return values.some((v) => v !== null && v !== '');
  const first = values[0];
  return first !== null && typeof first === 'object' && hasValue(first as DicomJson, tail);
}

function matchesValue(key: string, value: string, vr: string): boolean {
  if ((vr === 'DT' || vr === 'DA' || vr === 'TM') && key.includes('-')) {
    const [from, to] = key.split('-');
    return (!from || value >= from) && (!to || value.slice(0, to.length) <= to);
  }
  if (key.includes('*') || key.includes('?')) {
    const pattern = key.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    return new RegExp(`^${pattern}$`, 'i').test(value);
  }
  return value === key;
}

function firstString(dataset: DicomJson, tag: string): string | undefined {
  const value = (dataset as Record<string, { Value?: unknown[] } | undefined>)[tag]?.Value?.[0];
  return typeof value === 'string' ? value : undefined;
}

export { UPS_STATES };

export interface WorkitemFields {
  uid: string;
  patientName: string;
  patientId: string;
  studyInstanceUid?: string;
  accessionNumber?: string;
  requestedProcedureId?: string;
  requestedProcedureDescription?: string;
  /** Code Value of the Scheduled Station Name Code Sequence item. */
  station: string;
  /** Code Value of the Scheduled Station Class Code Sequence item (a modality code). */
  modality?: string;
  /** DT, e.g. 20260115080000 */
  start: string;
  label?: string;
  performer?: string;
}

/** A SCHEDULED workitem as a RIS would create it (PS3.4 Table CC.2.5-3), in DICOM JSON. */
export function workitemDataset(fields: WorkitemFields): DicomJson {
  const v = (keyword: string, value: unknown, vr = entryOf(keyword).vr) => [tagOf(keyword), { vr, Value: [value] }] as const;
  const code = (value: string, scheme: string, meaning: string) =>
    Object.fromEntries([v('CodeValue', value), v('CodingSchemeDesignator', scheme), v('CodeMeaning', meaning)]);
  const request = Object.fromEntries([
    ...(fields.studyInstanceUid ? [v('StudyInstanceUID', fields.studyInstanceUid)] : []),
    v('AccessionNumber', fields.accessionNumber ?? ''),
    v('RequestedProcedureID', fields.requestedProcedureId ?? ''),
    v('RequestedProcedureDescription', fields.requestedProcedureDescription ?? ''),
  ]);
  return Object.fromEntries([
    v('SOPInstanceUID', fields.uid),
    v('PatientName', { Alphabetic: fields.patientName }),
    v('PatientID', fields.patientId),
    ...(fields.studyInstanceUid ? [v('StudyInstanceUID', fields.studyInstanceUid)] : []),
    v('ReferencedRequestSequence', request),
    v('ScheduledStationNameCodeSequence', code(fields.station, '99EDGE', `Station ${fields.station}`)),
    ...(fields.modality ? [v('ScheduledStationClassCodeSequence', code(fields.modality, 'DCM', fields.modality))] : []),
    v('ScheduledProcedureStepStartDateTime', fields.start),
    v('ProcedureStepLabel', fields.label ?? ''),
    v('ScheduledProcedureStepPriority', 'MEDIUM'),
    ...(fields.performer ? [v('ScheduledHumanPerformersSequence', Object.fromEntries([v('HumanPerformerName', { Alphabetic: fields.performer })]))] : []),
    v('ProcedureStepState', 'SCHEDULED'),
  ]) as unknown as DicomJson;
}
