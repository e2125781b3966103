/**
 * What a STOW-RS answer means for each instance sent, after the Azure DICOM service conformance statement
 * and the open-source dicom-server. Pure: no I/O, no clock.
 */
import type { StowResponse } from './stow-response.js';

/** FailureReason values with a meaning of their own. */
export const FAILURE = {
  /** The same Study/Series/SOP Instance UIDs are already stored. */
  sopInstanceAlreadyExists: 45070,
  /** Being created, or an earlier failed attempt not yet cleaned up. */
  instanceBeingCreated: 45071,
  processingFailure: 272,
  /** Refused by our own rules: the single instance is larger than the upstream accepts. */
  tooLarge: 413,
} as const;

export interface SentInstance {
  sopInstanceUid: string;
  /** The local copy replaced an earlier one with the same UIDs (its bytes may differ upstream). */
  replacesEarlier: boolean;
}

export type InstanceOutcome =
  | { kind: 'delivered'; warningReason?: number }
  /** Permanent: kept with its reason until a user retries. */
  | { kind: 'failed'; failureReason: number | null; message: string }
  /** Transient for this instance only: retry later with backoff; the destination stays online. */
  | { kind: 'retry'; failureReason: number | null; message: string }
  /** 45070 for a replaced instance with upsert off: the user chooses "overwrite". */
  | { kind: 'conflict'; message: string }
  /** 45070 for a replaced instance with upsert on: send again with PUT. */
  | { kind: 'resend-put' };

export type Verdict =
  | { kind: 'per-instance'; outcomes: Map<string, InstanceOutcome> }
  /** The destination is unreachable or overloaded: everything goes back to pending, the destination backs off. */
  | { kind: 'transient'; message: string; retryAfterMs?: number }
  /** 401: refresh the token once, then pause with state 'auth'. */
  | { kind: 'unauthorized'; message: string }
  /** 403: pause with a message naming the missing role. */
  | { kind: 'forbidden'; message: string }
  /** 413: split; a single instance that still gets it fails permanently. */
  | { kind: 'too-large'; message: string };

export interface StowAnswer {
  status: number;
  body: StowResponse | undefined;
  /** A short excerpt of a non-DICOM body (problem details, HTML), for the message. */
  text?: string;
  retryAfterMs?: number;
}

export const FORBIDDEN_MESSAGE =
  'the destination refused access (HTTP 403): the signed-in identity needs the "DICOM Data Owner" role on the DICOM service';

const TRANSIENT_STATUSES = new Set([408, 424, 429]);

/** Permanent unless it is one of the reasons that mean "try again later". */
function isTransientFailureReason(reason: number): boolean {
  if (reason === FAILURE.instanceBeingCreated) return true;
  // 0xA7xx: Refused: Out of Resources (PS3.4 Table B.2-1). The upstream may have room later.
  return reason >= 0xa700 && reason <= 0xa7ff;
}

function describeFailureReason(reason: number): string {
  switch (reason) {
    case FAILURE.sopInstanceAlreadyExists: return 'SOP instance already exists (45070)';
    case FAILURE.instanceBeingCreated: return 'SOP instance is being created or an earlier attempt is not cleaned up (45071)';
    case 43264: return 'the DICOM instance failed validation (43264)';
    case 43265: return 'the instance does not belong to the study in the request, or its UIDs are invalid (43265)';
    case FAILURE.processingFailure: return 'processing failure on the destination (272)';
    case 0xc000: return 'the destination cannot understand the instance (49152)';
    default:
      if (reason >= 0xa700 && reason <= 0xa7ff) return `the destination is out of resources (${reason})`;
      return `failure reason ${reason}`;
  }
}

function outcomeForFailure(reason: number, sent: SentInstance, upsert: boolean): InstanceOutcome {
  if (reason === FAILURE.sopInstanceAlreadyExists) {
    if (!sent.replacesEarlier) return { kind: 'delivered' };
    if (upsert) return { kind: 'resend-put' };
    return { kind: 'conflict', message: 'the destination already has an instance with these UIDs, and the local copy replaced an earlier one' };
  }
  const message = describeFailureReason(reason);
  if (isTransientFailureReason(reason)) return { kind: 'retry', failureReason: reason, message };
  return { kind: 'failed', failureReason: reason, message };
}

/**
 * Classifies one answer to a POST (or PUT) of `sent`. Outcomes come from the body, never from the status
 * alone: an instance the body does not mention is retried, so nothing is delivered without a response
 * saying so.
 */
export function classifyStow(answer: StowAnswer, sent: readonly SentInstance[], options: { upsert: boolean }): Verdict {
  const { status, body } = answer;
  const detail = answer.text ? `: ${answer.text}` : '';
  if (status === 401) return { kind: 'unauthorized', message: `the destination rejected the token (HTTP 401)${detail}` };
  if (status === 403) return { kind: 'forbidden', message: FORBIDDEN_MESSAGE };
  if (status === 413) return { kind: 'too-large', message: `request too large (HTTP 413)${detail}` };
  if (TRANSIENT_STATUSES.has(status) || status >= 500) {
    return { kind: 'transient', message: `HTTP ${status}${detail}`, retryAfterMs: answer.retryAfterMs };
  }
  const perInstanceStatus = status === 200 || status === 202 || status === 409 || status === 400;
  if (!perInstanceStatus || !body) {
    // Validation of the whole request without a per-instance answer: something in our request or the URL.
    // Kept transient (never give up) and shown as the destination's last error.
    return { kind: 'transient', message: `unexpected answer HTTP ${status}${body ? '' : ' without a DICOM JSON body'}${detail}`, retryAfterMs: answer.retryAfterMs };
  }
  const referenced = new Map(body.referenced.map((r) => [r.sopInstanceUid, r]));
  const failed = new Map(body.failed.map((f) => [f.sopInstanceUid, f]));
  const outcomes = new Map<string, InstanceOutcome>();
  for (const instance of sent) {
    const failure = failed.get(instance.sopInstanceUid);
    const reference = referenced.get(instance.sopInstanceUid);
    if (failure) {
      outcomes.set(instance.sopInstanceUid, outcomeForFailure(failure.failureReason, instance, options.upsert));
    } else if (reference) {
      const warningReason = reference.warningReason ?? body.warningReason;
      outcomes.set(instance.sopInstanceUid, warningReason === undefined ? { kind: 'delivered' } : { kind: 'delivered', warningReason });
    } else {
      outcomes.set(instance.sopInstanceUid, { kind: 'retry', failureReason: null, message: `HTTP ${status}: the response did not mention this instance` });
    }
  }
  return { kind: 'per-instance', outcomes };
}

/** A network-level failure (refused, reset, DNS, timeout): always transient. */
export function classifyNetworkError(error: unknown): Verdict {
  const err = error as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = err?.code ?? err?.cause?.code;
  const message = err?.message ?? String(error);
  return { kind: 'transient', message: code ? `${code}: ${message}` : message };
}
