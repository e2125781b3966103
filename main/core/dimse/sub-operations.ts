/**
 * The C-STORE sub-operations of a C-MOVE or C-GET (PS3.4 C.4.2, C.4.3): one request per instance, its
 * outcome, the running counts, and the pending and final responses that carry them.
 */
import { existsSync } from 'node:fs';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import type { CGetRequest, CGetResponse, CMoveRequest, CMoveResponse, EdgeScp } from './association.js';
import { responseSyntax } from './find.js';
import { DimseStatus, errorComment } from './statuses.js';
import { StoredInstanceDataset } from './stored-dataset.js';

const { Dataset, Transcoding } = dimse;
const { CStoreRequest } = dimse.requests;

export type StoreRequest = InstanceType<typeof CStoreRequest>;
export type Outcome = 'completed' | 'warning' | 'failed';
export type RetrieveResponse = CMoveResponse | CGetResponse;
export type Respond = (status: number, progress?: Progress, comment?: string) => void;

export interface Target {
  studyUid: string;
  seriesUid: string;
  sopInstanceUid: string;
  sopClassUid: string;
  transferSyntaxUid: string;
  /** The local file, when there is a readable one. */
  path: string | undefined;
  /** Not here, but held by the archive destination (NEARLINE): fetched on demand. */
  cloudOnly: boolean;
}

let codecs: Promise<void> | undefined;

/** Compressed↔uncompressed conversion needs dcmjs-codecs' WebAssembly; loaded once, on first need. */
export function initializeCodecs(logger: Logger): Promise<void> {
  codecs ??= Transcoding.initializeAsync().catch((error: unknown) => {
    logger.warn({ event: 'codecs-unavailable', reason: (error as Error)?.message }, 'transcoding of compressed syntaxes unavailable');
  });
  return codecs;
}

function outcomeOf(status: number): Outcome {
  if (status === DimseStatus.Success) return 'completed';
  if ((status & 0xf000) === 0xb000) return 'warning';
  return 'failed';
}

/** One promise per request: its C-STORE-RSP status, or failure if it is done (or the link is gone) without one. */
export function track(request: StoreRequest): { outcome: Promise<Outcome>; fail: () => void } {
  let settle!: (outcome: Outcome) => void;
  const outcome = new Promise<Outcome>((resolve) => (settle = resolve));
  request.on('response', (response: { getStatus(): number }) => settle(outcomeOf(response.getStatus())));
  request.on('done', () => settle('failed')); // no effect when a response came first
  return { outcome, fail: () => settle('failed') };
}

/**
 * The running counts of a retrieve. The instances to send may not all be known at the start (the archive is
 * still listing what it holds while the first ones are sent): until `expect` names them, there is no count
 * of remaining sub-operations, and so no pending response (PS3.4 C.4.2.3.1: pending responses are optional,
 * and one that is sent carries the number remaining).
 */
export class Progress {
  completed = 0;
  warnings = 0;
  failed: string[] = [];
  private expected: Set<string> | undefined;
  private left = 0;
  private readonly done = new Set<string>();

  constructor(expected?: Iterable<string>) {
    if (expected) this.expect(expected);
  }

  /** Every instance the retrieve is to send (instances sent that it does not name still count as done). */
  expect(sopInstanceUids: Iterable<string>): void {
    this.expected = new Set(sopInstanceUids);
    this.left = 0;
    for (const uid of this.expected) if (!this.done.has(uid)) this.left++;
  }

  /** Sub-operations still to come; undefined while the instances to send are not all known. */
  get remaining(): number | undefined {
    return this.expected ? this.left : undefined;
  }

  /** Whether this instance has had its sub-operation. */
  has(sopInstanceUid: string): boolean {
    return this.done.has(sopInstanceUid);
  }

  add(target: Pick<Target, 'sopInstanceUid'>, outcome: Outcome): void {
    if (!this.done.has(target.sopInstanceUid) && this.expected?.has(target.sopInstanceUid)) this.left--;
    this.done.add(target.sopInstanceUid);
    if (outcome === 'completed') this.completed++;
    else if (outcome === 'warning') this.warnings++;
    else this.failed.push(target.sopInstanceUid);
  }
}

/**
 * A C-STORE request for a local file, or for an instance's bytes as the archive sent them; undefined when the
 * file is gone (a failed sub-operation, not a broken association).
 */
export function storeRequest(
  target: Pick<Target, 'sopClassUid' | 'sopInstanceUid' | 'transferSyntaxUid'> & { path?: string; bytes?: Buffer },
): StoreRequest | undefined {
  const source = target.bytes ?? (target.path && existsSync(target.path) ? target.path : undefined);
  if (source === undefined) return undefined;
  return new CStoreRequest(new StoredInstanceDataset(source, target.sopClassUid, target.sopInstanceUid, target.transferSyntaxUid));
}

/** Builds one response (pending or final) with counts; a final one after failures lists them. */
export function responder<R extends RetrieveResponse>(
  scp: EdgeScp, request: CMoveRequest | CGetRequest, make: () => R, send: (responses: R[]) => void,
): Respond {
  return (status, progress, comment) => {
    const response = make();
    response.setStatus(status);
    if (comment) response.setErrorComment(errorComment(comment));
    if (progress) {
      // Pending responses carry every count; final ones leave out Remaining (PS3.4 C.4.2.1.4).
      const remaining = progress.remaining;
      if ((status === DimseStatus.Pending || status === DimseStatus.Cancel) && remaining !== undefined) response.setRemaining(remaining);
      response.setCompleted(progress.completed);
      response.setFailures(progress.failed.length);
      response.setWarnings(progress.warnings);
      if (status !== DimseStatus.Pending && progress.failed.length > 0) {
        response.setDataset(new Dataset({ FailedSOPInstanceUIDList: progress.failed }, responseSyntax(scp, request as never)));
      }
    }
    send([response]);
  };
}

/**
 * The final response: success, cancel, A702 when every sub-operation failed, B000 when some did or when the
 * archive could not be asked what it holds (`comment`), so instances there may not have been sent.
 */
export function finish(scp: EdgeScp, request: { getMessageId(): number }, progress: Progress, respond: Respond, comment?: string): void {
  // Cancelled before the end, or before the archive's listing said how many there were to send.
  if (scp.isCancelled(request.getMessageId()) && progress.remaining !== 0) return respond(DimseStatus.Cancel, progress);
  // `comment` says what could not be asked of the archive: instances it holds may be missing, so never Success.
  if (progress.failed.length === 0 && progress.warnings === 0 && comment === undefined) return respond(DimseStatus.Success, progress);
  if (progress.completed === 0 && progress.warnings === 0) return respond(DimseStatus.OutOfResourcesSubOperations, progress, comment ?? 'every sub-operation failed');
  respond(DimseStatus.SubOperationsCompleteWithFailures, progress, comment);
}
