/**
 * Modality Performed Procedure Step SCP (PS3.4 Annex F): N-CREATE opens a step IN PROGRESS, N-SET updates it
 * and ends it COMPLETED or DISCONTINUED, with the performed series. A step is linked to its worklist item
 * (by the Scheduled Step Attributes' Study Instance UID, else Accession Number), whose state follows it.
 */
import dimse from 'dcmjs-dimse';
import type { Archive } from '../store/archive.js';
import { MppsError, type MppsAttributes, type MppsChange, type MppsState, type PerformedSeries } from '../store/mpps.js';
import { generatedUid } from '../store/worklist.js';
import type { AssociationInfo } from './association.js';
import { toKeyString } from './identifier.js';
import { DimseStatus, errorComment } from './statuses.js';

const { NCreateResponse, NSetResponse } = dimse.responses;
type NCreateRequest = InstanceType<typeof dimse.requests.NCreateRequest>;
type NSetRequest = InstanceType<typeof dimse.requests.NSetRequest>;
export type MppsResponse = InstanceType<typeof NCreateResponse> | InstanceType<typeof NSetResponse>;

const STATES: readonly MppsState[] = ['IN PROGRESS', 'COMPLETED', 'DISCONTINUED'];
/** PS3.4 F.7.2.2.2: the Error ID and comment of an N-SET on a step that is no longer IN PROGRESS. */
const NO_LONGER_UPDATABLE = { errorId: 0xa710, comment: 'Performed Procedure Step Object may no longer be updated' } as const;

class MppsRequestError extends Error {
  constructor(readonly status: number, message: string, readonly errorId?: number) {
    super(message);
  }
}

function sequence(value: unknown): Record<string, unknown>[] {
  return (Array.isArray(value) ? value : value && typeof value === 'object' ? [value] : []) as Record<string, unknown>[];
}

function performedSeries(value: unknown): PerformedSeries[] {
  return sequence(value).map((series) => ({
    seriesInstanceUid: toKeyString(series.SeriesInstanceUID),
    sopInstanceUids: [...sequence(series.ReferencedImageSequence), ...sequence(series.ReferencedNonImageCompositeSOPInstanceSequence)]
      .map((reference) => toKeyString(reference.ReferencedSOPInstanceUID)),
  }));
}

function stateOf(elements: Record<string, unknown>): MppsState | undefined {
  if (!Object.hasOwn(elements, 'PerformedProcedureStepStatus')) return undefined;
  const state = toKeyString(elements.PerformedProcedureStepStatus);
  if (!STATES.includes(state as MppsState)) {
    throw new MppsRequestError(DimseStatus.InvalidAttributeValue, `PerformedProcedureStepStatus ${JSON.stringify(state)} is not one of ${STATES.join(', ')}`);
  }
  return state as MppsState;
}

/** The attributes of an N-CREATE (F.7.2.1) the appliance keeps; throws naming a missing or bad one. */
function createAttributes(elements: Record<string, unknown>): MppsAttributes {
  const state = stateOf(elements);
  if (state === undefined) throw new MppsRequestError(DimseStatus.MissingAttribute, 'PerformedProcedureStepStatus is missing');
  if (state !== 'IN PROGRESS') {
    throw new MppsRequestError(DimseStatus.InvalidAttributeValue, `PerformedProcedureStepStatus must be IN PROGRESS at N-CREATE, not ${state}`);
  }
  if (!Object.hasOwn(elements, 'ScheduledStepAttributesSequence')) {
    throw new MppsRequestError(DimseStatus.MissingAttribute, 'ScheduledStepAttributesSequence is missing');
  }
  const scheduled = sequence(elements.ScheduledStepAttributesSequence)[0] ?? {};
  return {
    studyUid: toKeyString(scheduled.StudyInstanceUID),
    accessionNumber: toKeyString(scheduled.AccessionNumber),
    performedStepId: toKeyString(elements.PerformedProcedureStepID),
    modality: toKeyString(elements.Modality),
    startDate: toKeyString(elements.PerformedProcedureStepStartDate),
    startTime: toKeyString(elements.PerformedProcedureStepStartTime),
    endDate: toKeyString(elements.PerformedProcedureStepEndDate),
    endTime: toKeyString(elements.PerformedProcedureStepEndTime),
    performedSeries: performedSeries(elements.PerformedSeriesSequence),
  };
}

export class MppsService {
  constructor(private readonly archive: Archive, private readonly now: () => number = Date.now) {}

  create(info: AssociationInfo, request: NCreateRequest): MppsResponse {
    const response = NCreateResponse.fromRequest(request);
    const sopInstanceUid = request.getAffectedSopInstanceUid() || generatedUid();
    response.setAffectedSopInstanceUid(sopInstanceUid);
    return this.answer(info, response, 'N-CREATE', sopInstanceUid, () => {
      const attributes = createAttributes(request.getDataset()?.getElements() ?? {});
      return this.archive.mpps.create(sopInstanceUid, info.callingAe, attributes, this.now());
    });
  }

  set(info: AssociationInfo, request: NSetRequest): MppsResponse {
    const response = NSetResponse.fromRequest(request);
    const sopInstanceUid = request.getRequestedSopInstanceUid();
    return this.answer(info, response, 'N-SET', sopInstanceUid, () => {
      const elements = request.getDataset()?.getElements() ?? {};
      const series = Object.hasOwn(elements, 'PerformedSeriesSequence') ? performedSeries(elements.PerformedSeriesSequence) : undefined;
      return this.archive.mpps.set(sopInstanceUid, {
        state: stateOf(elements),
        performedStepId: toKeyString(elements.PerformedProcedureStepID),
        modality: toKeyString(elements.Modality),
        endDate: toKeyString(elements.PerformedProcedureStepEndDate),
        endTime: toKeyString(elements.PerformedProcedureStepEndTime),
        performedSeries: series,
      }, this.now());
    });
  }

  private answer(info: AssociationInfo, response: MppsResponse, kind: string, sopInstanceUid: string, work: () => MppsChange): MppsResponse {
    try {
      const { step, item, itemMoved, upsQueued } = work();
      response.setStatus(DimseStatus.Success);
      info.logger.info({ event: kind === 'N-CREATE' ? 'mpps-created' : 'mpps-set', sopInstanceUid, state: step.state, studyUid: step.studyUid,
        accessionNumber: step.accessionNumber, worklistItemId: item?.id ?? null, worklistState: item?.state ?? null, worklistMoved: itemMoved,
        series: step.performedSeries.length, ...(upsQueued.length > 0
          ? { workitemUid: item?.workitemUid, upsQueued: upsQueued.map((change) => (change.state === 'queued' ? change.targetState : `${change.targetState} (${change.lastError})`)) } : {}) }, `MPPS ${kind}`);
    } catch (error) {
      const refusal = refusalOf(error);
      response.setStatus(refusal.status);
      response.setErrorComment(errorComment(refusal.message));
      if (refusal.errorId !== undefined) response.getCommandDataset().setElement('ErrorID', refusal.errorId as unknown as string); // US; the typings say string
      info.logger.warn({ event: 'mpps-refused', kind, sopInstanceUid, status: refusal.status, reason: refusal.message }, `MPPS ${kind} refused`);
    }
    return response;
  }
}

function refusalOf(error: unknown): { status: number; message: string; errorId?: number } {
  if (error instanceof MppsRequestError) return { status: error.status, message: error.message, errorId: error.errorId };
  if (error instanceof MppsError) {
    if (error.kind === 'duplicate') return { status: DimseStatus.DuplicateSopInstance, message: error.message };
    if (error.kind === 'not-found') return { status: DimseStatus.NoSuchSopInstance, message: error.message };
    return { status: DimseStatus.ProcessingFailure, message: NO_LONGER_UPDATABLE.comment, errorId: NO_LONGER_UPDATABLE.errorId };
  }
  return { status: DimseStatus.ProcessingFailure, message: `the step could not be recorded: ${(error as Error)?.message ?? String(error)}` };
}
