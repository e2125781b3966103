/**
 * The archive destination's worklist over UPS-RS (PS3.18 §11): Search Workitems (GET /workitems, paged) and
 * Change Workitem State (PUT /workitems/{uid}/state with Procedure Step State and Transaction UID), and how a
 * workitem reads as a Modality Worklist item. Failures are ArchiveReadErrors; a refusal names the status, the
 * problem body and the Warning header the standard gives (PS3.18 11.7.3).
 */
import { createHash } from 'node:crypto';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagsOf } from '../dicom/dictionary.js';
import { uidProblem } from '../dicom/uid.js';
import type { CloudWorkitem } from '../store/cloud-worklist.js';
import type { UpsTargetState } from '../store/ups-state-changes.js';
import { Deadline, header, parseDatasets, type ArchiveClient } from './archive-client.js';
import { ArchiveReadError } from './archive-errors.js';

const TAG = tagsOf(
  'SOPInstanceUID', 'ProcedureStepState', 'TransactionUID', 'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex',
  'StudyInstanceUID', 'ReferencedRequestSequence', 'AccessionNumber', 'RequestedProcedureID', 'RequestedProcedureDescription',
  'ReferringPhysicianName', 'ScheduledStationNameCodeSequence', 'ScheduledStationClassCodeSequence', 'CodeValue',
  'ScheduledProcedureStepStartDateTime', 'ProcedureStepLabel', 'ScheduledHumanPerformersSequence', 'HumanPerformerName',
);

export interface WorkitemSearch {
  /** Matching keys: keyword or tag paths ('ScheduledStationNameCodeSequence.CodeValue') → value. */
  match: Readonly<Record<string, string>>;
  pageSize?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

const PAGE = 100;
/** Pages asked at most in one search; beyond that the worklist is not a modality's day. */
const MAX_PAGES = 50;

/** SCHEDULED (or other) workitems that match, every page; [] for 204. Duplicates across pages are dropped. */
export async function searchWorkitems(client: ArchiveClient, search: WorkitemSearch): Promise<ReceivedDicomJson[]> {
  const what = 'UPS-RS search of workitems';
  const deadline = new Deadline(search.timeoutMs, search.signal);
  const pageSize = search.pageSize ?? PAGE;
  const found = new Map<string, ReceivedDicomJson>();
  try {
    for (let page = 0, offset = 0; page < MAX_PAGES; page++) {
      const query = new URLSearchParams(Object.entries(search.match));
      query.set('includefield', 'all');
      query.set('limit', String(pageSize));
      if (offset > 0) query.set('offset', String(offset));
      const url = client.url('/workitems', query);
      const response = await client.get(url, 'application/dicom+json', what, deadline);
      if (response.status === 204) {
        await response.body.dump();
        break;
      }
      if (response.status !== 200) throw await client.failure(response, what);
      const datasets = parseDatasets(await client.text(response, what, deadline, 64 * 1024 ** 2), what, url);
      for (const dataset of datasets) found.set(jsonString(dataset, TAG.SOPInstanceUID) || `#${found.size}`, dataset);
      if (datasets.length < pageSize) break;
      offset += datasets.length;
    }
    return [...found.values()];
  } finally {
    deadline.clear();
  }
}

/** What the archive said to a state change it took: a Warning (already in the requested state) or nothing. */
export interface StateChangeAnswer {
  warning?: string;
}

/** PUT …/workitems/{uid}/state; resolves on 200, rejects with an ArchiveReadError otherwise. */
export async function changeWorkitemState(
  client: ArchiveClient, workitemUid: string, state: UpsTargetState, transactionUid: string, options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<StateChangeAnswer> {
  const what = `UPS-RS change of workitem ${workitemUid} to ${state}`;
  const deadline = new Deadline(options.timeoutMs, options.signal);
  try {
    const url = client.url(`/workitems/${encodeURIComponent(workitemUid)}/state`);
    const body = JSON.stringify([{ [TAG.ProcedureStepState]: { vr: 'CS', Value: [state] }, [TAG.TransactionUID]: { vr: 'UI', Value: [transactionUid] } }]);
    const response = await client.request('PUT', url, { accept: 'application/dicom+json', body, contentType: 'application/dicom+json' }, what, deadline);
    const warning = header(response, 'warning');
    if (response.status === 200) {
      await response.body.dump();
      return warning ? { warning } : {};
    }
    const failure = await client.failure(response, what);
    if (!warning) throw failure;
    throw new ArchiveReadError(failure.kind, `${failure.message}; Warning: ${warning}`, { url: failure.url, status: failure.status, retryable: failure.retryable });
  } finally {
    deadline.clear();
  }
}

function items(dataset: ReceivedDicomJson, tag: string): ReceivedDicomJson[] {
  const element = dataset[tag] ?? dataset[tag.toLowerCase()];
  const values = Array.isArray(element?.Value) ? element.Value : [];
  return values.filter((v): v is ReceivedDicomJson => v !== null && typeof v === 'object' && !Array.isArray(v));
}

const DATE_TIME = /^(\d{8})(\d{2,6})?(\.\d{1,6})?([+-]\d{4})?$/;

/**
 * A workitem as a Modality Worklist item for one of `stations` (its Scheduled Station Name Code Sequence
 * names it); throws with the reason when it cannot be one. Modality is the Scheduled Station Class code when
 * that is a modality code; the Study Instance UID is the workitem's (top level, else in its Referenced Request
 * Sequence), or one made from the workitem UID, the same at every refresh.
 */
export function worklistItemOf(dataset: ReceivedDicomJson, stations: readonly string[]): CloudWorkitem {
  const workitemUid = jsonString(dataset, TAG.SOPInstanceUID);
  const uidIssue = uidProblem(workitemUid);
  if (uidIssue) throw new Error(`its SOPInstanceUID ${JSON.stringify(workitemUid)} ${uidIssue}`);
  const station = items(dataset, TAG.ScheduledStationNameCodeSequence).map((code) => jsonString(code, TAG.CodeValue)).find((value) => stations.includes(value));
  if (!station) throw new Error(`its ScheduledStationNameCodeSequence names none of the stations ${stations.join(', ')}`);
  const request = items(dataset, TAG.ReferencedRequestSequence)[0] ?? {};
  const studyUid = jsonString(dataset, TAG.StudyInstanceUID) || jsonString(request, TAG.StudyInstanceUID);
  if (studyUid && uidProblem(studyUid)) throw new Error(`its StudyInstanceUID ${JSON.stringify(studyUid)} ${uidProblem(studyUid)}`);
  const start = jsonString(dataset, TAG.ScheduledProcedureStepStartDateTime);
  const parts = DATE_TIME.exec(start);
  if (start && !parts) throw new Error(`its ScheduledProcedureStepStartDateTime ${JSON.stringify(start)} is not a DICOM date-time`);
  const stationClass = jsonString(items(dataset, TAG.ScheduledStationClassCodeSequence)[0] ?? {}, TAG.CodeValue);
  const sex = jsonString(dataset, TAG.PatientSex);
  return {
    workitemUid,
    studyInstanceUid: studyUid || derivedStudyUid(workitemUid),
    patientName: jsonString(dataset, TAG.PatientName),
    patientId: jsonString(dataset, TAG.PatientID),
    patientBirthDate: jsonString(dataset, TAG.PatientBirthDate),
    patientSex: ['M', 'F', 'O'].includes(sex) ? sex as 'M' | 'F' | 'O' : '',
    accessionNumber: jsonString(request, TAG.AccessionNumber),
    referringPhysicianName: jsonString(dataset, TAG.ReferringPhysicianName),
    requestedProcedureId: jsonString(request, TAG.RequestedProcedureID),
    requestedProcedureDescription: jsonString(request, TAG.RequestedProcedureDescription),
    scheduledStationAeTitle: station,
    scheduledStartDate: parts?.[1] ?? '',
    scheduledStartTime: parts?.[2] ?? '',
    modality: /^[A-Z0-9_]{1,16}$/.test(stationClass) ? stationClass : '',
    scheduledProcedureStepId: '',
    scheduledProcedureStepDescription: jsonString(dataset, TAG.ProcedureStepLabel),
    scheduledPerformingPhysicianName: jsonString(items(dataset, TAG.ScheduledHumanPerformersSequence)[0] ?? {}, TAG.HumanPerformerName),
  };
}

/** A UID under 2.25 from the workitem UID's SHA-256, so every refresh gives the same one. */
function derivedStudyUid(workitemUid: string): string {
  const digest = createHash('sha256').update(`dicom-edge study of workitem ${workitemUid}`).digest();
  return `2.25.${BigInt(`0x${digest.subarray(0, 16).toString('hex')}`).toString(10)}`;
}
