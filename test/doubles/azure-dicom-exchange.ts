// One request/response exchange of the Azure DICOM double, and the record kept of it.
import type http from 'node:http';

export interface InstanceOutcome {
  sopUid?: string;
  outcome: 'stored' | 'replaced' | 'failed';
  failureReason?: number;
  warningReason?: number;
}

export interface DicomRequestRecord {
  seq: number;
  method: string;
  /** Path without the query string, e.g. /v2/studies */
  path: string;
  query: string;
  partition: string;
  kind: 'store' | 'search' | 'retrieve' | 'metadata' | 'changefeed' | 'delete' | 'workitem' | 'other';
  /** HTTP status sent, or how the exchange ended without one. */
  status: number | 'dropped' | 'aborted' | 'pending';
  bytesReceived: number;
  /** One entry per part read, in order (store requests only). */
  instances: InstanceOutcome[];
  /** Kind of the fault that acted on this request, if any. */
  fault?: string;
  auth: 'off' | 'ok' | 'missing' | 'invalid' | 'forbidden';
}

export type Reply = (status: number, body?: unknown, headers?: Record<string, string>, contentType?: string) => void;

export interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  rec: DicomRequestRecord;
  /** Sends a JSON (or empty) answer and notes its status in `rec`. */
  reply: Reply;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** `/v2` or `/v2/partitions/NAME` */
  prefix: string;
}

/** Error body of the double's non-DICOM answers. */
export function problem(code: string, message: string): { errors: Array<{ code: string; message: string }> } {
  return { errors: [{ code, message }] };
}

/** Reads and discards the rest of a request body so the client can finish sending. */
export async function drain(ex: Pick<Exchange, 'req' | 'rec'>): Promise<void> {
  try {
    // destroyOnReturn false: leaving a loop on the body must never destroy the socket we answer on.
    for await (const chunk of ex.req.iterator({ destroyOnReturn: false })) ex.rec.bytesReceived += (chunk as Buffer).length;
  } catch {
    // the client went away; nothing to drain
  }
}

export function instanceUrl(ex: Pick<Exchange, 'origin' | 'prefix'>, studyUid: string, seriesUid: string, sopUid: string): string {
  return `${ex.origin}${ex.prefix}/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}`;
}
