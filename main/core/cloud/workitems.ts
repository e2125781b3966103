/**
 * The archive destination's worklist over UPS-RS (PS3.18 §11): Search Workitems (GET /workitems, paged),
 * Update Workitem (POST /workitems/{uid}?{transaction-uid}: the final-state attributes) and Change Workitem
 * State (PUT /workitems/{uid}/state with Procedure Step State and Transaction UID); how a workitem reads as a
 * Modality Worklist item, and what an MPPS step gives the workitem before it is COMPLETED or CANCELED. Failures are ArchiveReadErrors; a refusal names the status, the
 * problem body and the Warning header the standard gives (PS3.18 11.7.3).
 */
import { createHash } from 'node:crypto';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { entryOf, tagsOf } from '../dicom/dictionary.js';
import type { DicomJson, DicomJsonValue } from '../dicom/json-model.js';
import { uidProblem } from '../dicom/uid.js';
import type { CloudWorkitem } from '../store/cloud-worklist.js';
import type { MppsStep } from '../store/mpps.js';
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

/** POST …/workitems/{uid}?{transactionUid} (the Azure DICOM service takes the Transaction UID as the first query key). */
export async function updateWorkitem(
  client: ArchiveClient, workitemUid: string, transactionUid: string, dataset: DicomJson, options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const what = `UPS-RS update of workitem ${workitemUid}`;
  const deadline = new Deadline(options.timeoutMs, options.signal);
  try {
    const url = `${client.url(`/workitems/${encodeURIComponent(workitemUid)}`)}?${encodeURIComponent(transactionUid)}`;
    const response = await client.request('POST', url, { accept: 'application/dicom+json', body: JSON.stringify([dataset]), contentType: 'application/dicom+json' },
      what, deadline);
    if (response.status === 200 || response.status === 204) {
      await response.body.dump();
      return;
    }
    const warning = header(response, 'warning');
    const failure = await client.failure(response, what);
    if (!warning) throw failure;
    throw new ArchiveReadError(failure.kind, `${failure.message}; Warning: ${warning}`, { url: failure.url, status: failure.status, retryable: failure.retryable });
  } finally {
    deadline.clear();
  }
}

type Attributes = Record<string, DicomJsonValue | readonly DicomJsonValue[] | readonly DicomJson[]>;

/** DICOM JSON from keyword → value(s); sequences are arrays of datasets made the same way. VRs from the dictionary. */
function dataset(values: Attributes): DicomJson {
  const out: DicomJson = {};
  for (const [keyword, value] of Object.entries(values)) {
    const { tag, vr } = entryOf(keyword);
    const list = (Array.isArray(value) ? value : [value]) as DicomJsonValue[];
    out[tag] = { vr, Value: list.filter((v) => v !== '' && v !== null) };
  }
  return out;
}

const code = (value: string, scheme: string, meaning: string): DicomJson => dataset({ CodeValue: value, CodingSchemeDesignator: scheme, CodeMeaning: meaning });

/** A DICOM DT (YYYYMMDDHHMMSS) of a DA and TM, or of `now` (local time, as modalities send them) when the date is empty. */
function dateTime(date: string, time: string, now: Date): string {
  if (date) return `${date}${time}`;
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
}

/**
 * The attributes a workitem needs before it may be COMPLETED (PS3.4 Table CC.2.5-3, final state code P: the
 * Unified Procedure Step Performed Procedure Sequence with the performing station, its start and end, the
 * performed workitem and the output) or CANCELED (code X: the cancellation date-time and a discontinuation
 * reason), from the MPPS step that ended it. The performing station is the calling AE title; the performed
 * workitem is coded by the step's modality (DCM); the output lists the performed series and instances.
 */
export function finalStateAttributes(target: 'COMPLETED' | 'CANCELED', step: MppsStep | undefined, studyUid: string, now: Date): DicomJson {
  if (target === 'CANCELED') {
    return dataset({
      ProcedureStepProgressInformationSequence: [dataset({
        ProcedureStepCancellationDateTime: dateTime(step?.endDate ?? '', step?.endTime ?? '', now),
        ProcedureStepDiscontinuationReasonCodeSequence: [code('110513', 'DCM', 'Discontinued for unspecified reason')],
      })],
    });
  }
  const modality = step?.modality || 'OT';
  const output = (step?.performedSeries ?? []).map((series) => dataset({
    TypeOfInstances: 'DICOM',
    StudyInstanceUID: step?.studyUid || studyUid,
    SeriesInstanceUID: series.seriesInstanceUid,
    ReferencedSOPSequence: series.sopInstanceUids.map((uid) => dataset({ ReferencedSOPInstanceUID: uid })),
  }));
  return dataset({
    UnifiedProcedureStepPerformedProcedureSequence: [dataset({
      PerformedStationNameCodeSequence: [code(step?.callingAe ?? '', '99EDGE', `Station ${step?.callingAe ?? ''}`)],
      PerformedProcedureStepStartDateTime: dateTime(step?.startDate ?? '', step?.startTime ?? '', now),
      PerformedProcedureStepEndDateTime: dateTime(step?.endDate ?? '', step?.endTime ?? '', now),
      PerformedWorkitemCodeSequence: [code(modality, 'DCM', modality)],
      OutputInformationSequence: output.length > 0 ? output : [dataset({ TypeOfInstances: 'DICOM', StudyInstanceUID: step?.studyUid || studyUid })],
    })],
  });
}

/** An update that changes nothing but is taken only from the owner: the Procedure Step Label as it was. */
export function labelUpdate(label: string): DicomJson {
  return dataset({ ProcedureStepLabel: label });
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
