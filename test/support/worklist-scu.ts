// DCMTK's findscu -W as the modality asking for its worklist: the return keys a modality asks for, with
// matching values where given, and the parsed responses.
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
