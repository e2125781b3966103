// A modality's MPPS SCU built on dcmjs-dimse's Client (not our stack): one N-CREATE or N-SET per association,
// and the response's status, Error Comment and Error ID.
import dimse from 'dcmjs-dimse';

export const MPPS_SOP_CLASS = '1.2.840.10008.3.1.2.3.3';
const { Client, Dataset } = dimse;
const { NCreateRequest, NSetRequest } = dimse.requests;
const { TransferSyntax } = dimse.constants;

export interface MppsAnswer {
  status: number | undefined;
  errorComment: string;
  errorId: unknown;
  affectedSopInstanceUid: string;
}

export type MppsRequest = InstanceType<typeof NCreateRequest> | InstanceType<typeof NSetRequest>;

/** Sends one N-CREATE or N-SET to 127.0.0.1:port and reads the response. */
export function sendMpps(port: number, request: MppsRequest, aes: { calling?: string; called?: string } = {}): Promise<MppsAnswer> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let answer: MppsAnswer | undefined;
    request.on('response', (response: InstanceType<typeof dimse.responses.Response>) => {
      const command = response.getCommandDataset();
      answer = {
        status: response.getStatus(), errorComment: String(command.getElement('ErrorComment') ?? ''),
        errorId: command.getElement('ErrorID'), affectedSopInstanceUid: String(response.getAffectedSopInstanceUid() ?? ''),
      };
    });
    client.addRequest(request);
    client.on('networkError', reject);
    client.on('closed', () => (answer ? resolve(answer) : reject(new Error('no response'))));
    client.send('127.0.0.1', port, aes.calling ?? 'CT1', aes.called ?? 'EDGE', { connectTimeout: 10_000, associationTimeout: 10_000, pduTimeout: 10_000 });
  });
}

export function mppsCreate(sopInstanceUid: string, elements: Record<string, unknown>): MppsRequest {
  const request = new NCreateRequest(MPPS_SOP_CLASS, sopInstanceUid);
  request.setDataset(new Dataset(elements, TransferSyntax.ExplicitVRLittleEndian));
  return request;
}

export function mppsSet(sopInstanceUid: string, elements: Record<string, unknown>): MppsRequest {
  const request = new NSetRequest(MPPS_SOP_CLASS, sopInstanceUid);
  request.setDataset(new Dataset(elements, TransferSyntax.ExplicitVRLittleEndian));
  return request;
}

/** The N-CREATE attributes of a step IN PROGRESS (or `status`) for the item with this Study Instance UID and Accession Number. */
export function mppsInProgress(item: { studyInstanceUid: string; accessionNumber: string }, status = 'IN PROGRESS'): Record<string, unknown> {
  return {
    PerformedProcedureStepStatus: status,
    PerformedProcedureStepID: 'PPS1',
    PerformedStationAETitle: 'CT1',
    PerformedProcedureStepStartDate: '20260115',
    PerformedProcedureStepStartTime: '081500',
    Modality: 'CT',
    PatientName: [{ Alphabetic: 'DOE^JOHN' }],
    PatientID: 'P1',
    ScheduledStepAttributesSequence: [{ StudyInstanceUID: item.studyInstanceUid, AccessionNumber: item.accessionNumber, ScheduledProcedureStepID: 'SPS1' }],
    PerformedSeriesSequence: [],
  };
}
