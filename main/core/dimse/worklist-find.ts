/**
 * Modality Worklist Information Model – FIND SCP (PS3.4 Annex K) over the local worklist: SCHEDULED items
 * matched on the patient and request keys and on the Scheduled Procedure Step Sequence item (station AE,
 * start date and time ranges, modality, …), with the same matching engine as C-FIND (dicom/matching.ts).
 */
import dimse from 'dcmjs-dimse';
import type { WorklistItem } from '../contract/api/worklist.js';
import { entryOf } from '../dicom/dictionary.js';
import type { Vr } from '../dicom/keywords.js';
import { InvalidMatchKeyError, matches, parseMatchKey, type MatchKey } from '../dicom/matching.js';
import type { Archive } from '../store/archive.js';
import type { AssociationInfo, CFindRequest, CFindResponse, EdgeScp } from './association.js';
import { responseSyntax, waitForSocket } from './find.js';
import { toKeyString } from './identifier.js';
import { DimseStatus, errorComment } from './statuses.js';

const { CFindResponse: FindResponse } = dimse.responses;
const { Dataset } = dimse;

type ItemField = keyof WorklistItem;

/** Attributes of the Requested Procedure and patient (PS3.4 K.6.1.2.2) the worklist holds, by keyword. */
const ITEM_KEYS: Readonly<Record<string, ItemField>> = {
  PatientName: 'patientName',
  PatientID: 'patientId',
  PatientBirthDate: 'patientBirthDate',
  PatientSex: 'patientSex',
  AccessionNumber: 'accessionNumber',
  ReferringPhysicianName: 'referringPhysicianName',
  RequestedProcedureID: 'requestedProcedureId',
  RequestedProcedureDescription: 'requestedProcedureDescription',
  StudyInstanceUID: 'studyInstanceUid',
};

/** Attributes of a Scheduled Procedure Step Sequence item. */
const STEP_KEYS: Readonly<Record<string, ItemField>> = {
  ScheduledStationAETitle: 'scheduledStationAeTitle',
  ScheduledProcedureStepStartDate: 'scheduledStartDate',
  ScheduledProcedureStepStartTime: 'scheduledStartTime',
  Modality: 'modality',
  ScheduledPerformingPhysicianName: 'scheduledPerformingPhysicianName',
  ScheduledProcedureStepID: 'scheduledProcedureStepId',
  ScheduledProcedureStepDescription: 'scheduledProcedureStepDescription',
};

const STEP_SEQUENCE = 'ScheduledProcedureStepSequence';
const NON_ASCII = /[^\x00-\x7f]/;

export class WorklistIdentifierError extends Error {
  override name = 'WorklistIdentifierError';
}

interface Requested {
  keyword: string;
  vr: string;
  field: ItemField | undefined;
}

/** A matching key and the item value it is matched against. */
interface ItemKey {
  key: MatchKey;
  value(item: WorklistItem): string;
}

/** A worklist query: matching keys on item values, and the return keys asked for (top level and in the step). */
export interface WorklistQuery {
  keys: ItemKey[];
  returned: Requested[];
  /** Undefined when the query has no Scheduled Procedure Step Sequence. */
  stepReturned: Requested[] | undefined;
}

function requested(keyword: string, fields: Readonly<Record<string, ItemField>>): Requested {
  let vr = '';
  try {
    vr = entryOf(keyword).vr;
  } catch {
    // not a dictionary keyword: dcmjs names private or unknown tags by tag; nothing to return for them
  }
  return { keyword, vr, field: Object.hasOwn(fields, keyword) ? fields[keyword] : undefined };
}

function addKey(query: WorklistQuery, keyword: string, field: ItemField | undefined, value: unknown): void {
  if (!field) return;
  const text = toKeyString(value);
  if (text.trim() === '') return;
  query.keys.push({ key: parseMatchKey({ keyword, vr: entryOf(keyword).vr as Vr }, text), value: (item) => item[field] as string });
}

const START_DATE = 'ScheduledProcedureStepStartDate';
const START_TIME = 'ScheduledProcedureStepStartTime';

/** The bounds of a DA or TM range key, each checked as a value of its VR; a time range alone may run backwards. */
function rangeBounds(keyword: string, text: string): [string | undefined, string | undefined] {
  const attribute = { keyword, vr: entryOf(keyword).vr as Vr };
  const parts = text.split('-');
  if (parts.length !== 2) parseMatchKey(attribute, text); // throws, naming the attribute and the problem
  const [lower, upper] = parts.map((bound) => bound.trim().replaceAll(':', '') || undefined);
  if (lower === undefined && upper === undefined) parseMatchKey(attribute, text);
  for (const bound of [lower, upper]) if (bound !== undefined) parseMatchKey(attribute, bound);
  return [lower, upper];
}

/**
 * Start Date and Start Time ranges given together are one datetime range (PS3.4 C.2.2.2.5, as DCMTK's
 * wlmscpfs does): 20261201-20261202 with 2200-0600 is from 1 Dec 22:00 to 2 Dec 06:00, not two ranges
 * matched apart. Returns false when the keys are to be matched one by one.
 */
function addCombinedStartKey(query: WorklistQuery, step: Record<string, unknown>): boolean {
  const dateText = toKeyString(step[START_DATE]).trim();
  const timeText = toKeyString(step[START_TIME]).trim();
  if (!dateText.includes('-') || !timeText.includes('-')) return false;
  const dates = rangeBounds(START_DATE, dateText);
  const times = rangeBounds(START_TIME, timeText);
  const bound = (date: string | undefined, time: string | undefined) => (date === undefined ? '' : `${date}${time ?? ''}`);
  query.keys.push({
    key: parseMatchKey({ keyword: `${START_DATE} with ${START_TIME}`, vr: 'DT' }, `${bound(dates[0], times[0])}-${bound(dates[1], times[1])}`),
    value: (item) => (item.scheduledStartDate === '' ? '' : `${item.scheduledStartDate}${item.scheduledStartTime}`),
  });
  return true;
}

/** Reads a worklist identifier; throws WorklistIdentifierError or InvalidMatchKeyError naming the attribute. */
export function parseWorklistQuery(elements: Record<string, unknown>): WorklistQuery {
  const query: WorklistQuery = { keys: [], returned: [], stepReturned: undefined };
  for (const [keyword, value] of Object.entries(elements)) {
    if (keyword.startsWith('_') || keyword === 'SpecificCharacterSet') continue;
    if (keyword === STEP_SEQUENCE) {
      const items = Array.isArray(value) ? value : value && typeof value === 'object' ? [value] : [];
      if (items.length > 1) throw new WorklistIdentifierError(`${STEP_SEQUENCE} must have at most one item in a query`);
      const step = (items[0] ?? {}) as Record<string, unknown>;
      const stepKeywords = Object.keys(step).filter((k) => !k.startsWith('_'));
      // A sequence given with no item or an empty item asks for all of its attributes (PS3.4 C.2.2.2.6).
      query.stepReturned = (stepKeywords.length > 0 ? stepKeywords : Object.keys(STEP_KEYS))
        .map((k) => requested(k, STEP_KEYS)).filter((attribute) => attribute.vr !== '');
      const combined = addCombinedStartKey(query, step);
      for (const k of stepKeywords) {
        if (combined && (k === START_DATE || k === START_TIME)) continue;
        addKey(query, k, Object.hasOwn(STEP_KEYS, k) ? STEP_KEYS[k] : undefined, step[k]);
      }
      continue;
    }
    const attribute = requested(keyword, ITEM_KEYS);
    if (attribute.vr === '') continue; // an attribute we cannot name cannot be returned either
    query.returned.push(attribute);
    addKey(query, keyword, attribute.field, value);
  }
  return query;
}

export function matchesWorklistItem(query: WorklistQuery, item: WorklistItem): boolean {
  return query.keys.every(({ key, value }) => matches(key, value(item)));
}

function naturalized(vr: string, value: string): unknown {
  if (vr === 'SQ') return [];
  if (vr === 'PN') return value === '' ? [] : [{ Alphabetic: value }];
  return value;
}

/** The response identifier: requested keys with the item's values (empty where the worklist has none). */
export function worklistResponse(query: WorklistQuery, item: WorklistItem): Record<string, unknown> {
  let needsUtf8 = false;
  const valueOf = (attribute: Requested): unknown => {
    const value = attribute.field ? String(item[attribute.field] ?? '') : '';
    if (NON_ASCII.test(value)) needsUtf8 = true;
    return naturalized(attribute.vr, value);
  };
  const out: Record<string, unknown> = {};
  for (const attribute of query.returned) out[attribute.keyword] = valueOf(attribute);
  if (query.stepReturned) {
    out[STEP_SEQUENCE] = [Object.fromEntries(query.stepReturned.map((attribute) => [attribute.keyword, valueOf(attribute)]))];
  }
  out.SpecificCharacterSet = needsUtf8 ? 'ISO_IR 192' : '';
  return out;
}

/** C-FIND on the Modality Worklist model: one pending response per matching SCHEDULED item. */
export async function handleWorklistFind(
  archive: Archive, scp: EdgeScp, info: AssociationInfo, request: CFindRequest, send: (responses: CFindResponse[]) => void,
): Promise<void> {
  const final = (status: number, comment?: string) => {
    const response = FindResponse.fromRequest(request);
    response.setStatus(status);
    if (comment) response.setErrorComment(errorComment(comment));
    send([response]);
  };
  const identifier = request.getDataset();
  if (!identifier) {
    final(DimseStatus.IdentifierDoesNotMatch, 'no identifier');
    return;
  }
  let query: WorklistQuery;
  try {
    query = parseWorklistQuery(identifier.getElements());
  } catch (error) {
    if (error instanceof WorklistIdentifierError || error instanceof InvalidMatchKeyError) {
      info.logger.warn({ event: 'worklist-find-refused', reason: error.message }, 'Modality Worklist C-FIND identifier refused');
      final(DimseStatus.IdentifierDoesNotMatch, error.message);
      return;
    }
    throw error;
  }
  const found = archive.worklist.list('SCHEDULED').filter((item) => matchesWorklistItem(query, item));
  info.logger.info({ event: 'worklist-find', keys: query.keys.map(({ key }) => `${key.keyword}=${key.value}`), matches: found.length },
    'Modality Worklist C-FIND');
  const messageId = request.getMessageId();
  const syntax = responseSyntax(scp, request);
  for (const item of found) {
    if (scp.isCancelled(messageId) || scp.socket.destroyed) {
      final(DimseStatus.Cancel);
      return;
    }
    const response = FindResponse.fromRequest(request);
    response.setStatus(DimseStatus.Pending);
    response.setDataset(new Dataset(worklistResponse(query, item), syntax));
    send([response]);
    await waitForSocket(scp);
  }
  final(DimseStatus.Success);
}
