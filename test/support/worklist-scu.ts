// DCMTK's findscu -W as the modality asking for its worklist: the return keys a modality asks for, with
// matching values where given, and the parsed responses; and a persistent dcmjs-dimse SCU asking the same.
import dimse from 'dcmjs-dimse';
import { clientSocket, holdClientAssociation, type HeldAssociation } from '../../main/core/dimse/dcmjs-dimse-internals.js';
import { parseFindOutput, type FindResult } from './dcmtk-output.js';
import { requireTool, run } from './peers.js';

export const WORKLIST_RETURN_KEYS = [
  'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'AccessionNumber', 'StudyInstanceUID', 'RequestedProcedureID',
  'RequestedProcedureDescription',
];
export const WORKLIST_STEP_RETURN_KEYS = ['ScheduledStationAETitle', 'ScheduledProcedureStepStartDate', 'ScheduledProcedureStepStartTime', 'Modality',
  'ScheduledProcedureStepID', 'ScheduledProcedureStepDescription'];

/** findscu -W to 127.0.0.1:port; `keys` give matching values by keyword (step keys go into the sequence item). */
export async function findWorklist(port: number, calledAe: string, keys: Record<string, string>, callingAe = 'CT1'): Promise<FindResult> {
  const args = ['-v', '-W', '-aet', callingAe, '-aec', calledAe];
  for (const key of WORKLIST_RETURN_KEYS) args.push('-k', `${key}=${keys[key] ?? ''}`);
  for (const key of WORKLIST_STEP_RETURN_KEYS) args.push('-k', `ScheduledProcedureStepSequence[0].${key}=${keys[key] ?? ''}`);
  const result = await run(requireTool('findscu', 'dcmtk'), [...args, '127.0.0.1', String(port)], { timeoutMs: 30_000 });
  return parseFindOutput(result.stderr + result.stdout);
}

const { Client, Dataset } = dimse;
const { CFindRequest } = dimse.requests;
const { Status, SopClass, TransferSyntax } = dimse.constants;

/** One C-FIND's answer on a held association: the final status and the pending responses' data sets. */
export interface WorklistAnswer {
  status: number;
  responses: Record<string, unknown>[];
}

/**
 * A modality that keeps one association open and asks its worklist again and again (dcmjs-dimse's Client, not
 * our stack): the same return keys as findWorklist, without a process start per query.
 */
export interface WorklistSession {
  /** One C-FIND; the first also opens the association. Ask the next only once this one has answered. */
  find(keys: Record<string, string>): Promise<WorklistAnswer>;
  /** Releases the association; resolves once it is closed. */
  close(): Promise<void>;
}

function worklistRequest(keys: Record<string, string>): InstanceType<typeof CFindRequest> {
  const value = (key: string) => {
    const v = keys[key] ?? '';
    return key.endsWith('Name') && v !== '' ? [{ Alphabetic: v }] : v;
  };
  const request = new CFindRequest();
  request.setAffectedSopClassUid(SopClass.ModalityWorklistInformationModelFind);
  request.setDataset(new Dataset({
    ...Object.fromEntries(WORKLIST_RETURN_KEYS.map((key) => [key, value(key)])),
    ScheduledProcedureStepSequence: [Object.fromEntries(WORKLIST_STEP_RETURN_KEYS.map((key) => [key, value(key)]))],
  }, TransferSyntax.ExplicitVRLittleEndian));
  return request;
}

export function openWorklistSession(port: number, calledAe: string, callingAe = 'CT1'): WorklistSession {
  const client = new Client();
  let held: HeldAssociation | undefined;
  let pending: { reject(error: Error): void } | undefined;
  let closed = false;
  const closedPromise = new Promise<void>((resolve) => {
    client.on('closed', () => {
      closed = true;
      pending?.reject(new Error('the association closed before the C-FIND was answered'));
      resolve();
    });
  });
  client.on('networkError', (error: Error) => pending?.reject(error));
  return {
    find(keys) {
      if (closed) return Promise.reject(new Error('the association is closed'));
      if (pending) return Promise.reject(new Error('one C-FIND at a time'));
      const request = worklistRequest(keys);
      return new Promise<WorklistAnswer>((resolve, reject) => {
        const responses: Record<string, unknown>[] = [];
        pending = { reject: (error) => { pending = undefined; reject(error); } };
        request.on('response', (response: InstanceType<typeof dimse.responses.Response>) => {
          const status = response.getStatus();
          if (status === Status.Pending || status === 0xff01) {
            responses.push(response.getDataset()?.getElements() ?? {});
            return;
          }
          pending = undefined;
          resolve({ status, responses });
        });
        if (held) {
          held.send(request);
        } else {
          client.addRequest(request);
          client.send('127.0.0.1', port, callingAe, calledAe, { connectTimeout: 10_000, associationTimeout: 10_000, pduTimeout: 60_000 });
          held = holdClientAssociation(client);
          // As DCMTK's tools do: with Nagle on, each C-FIND-RQ would wait for the SCP's delayed ACK.
          clientSocket(client).setNoDelay(true);
        }
      });
    },
    async close() {
      if (!held || closed) return;
      held.release();
      await closedPromise;
    },
  };
}
