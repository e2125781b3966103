/**
 * The Verification (C-ECHO) check of a peer, as a contract: dimse/ implements it, web/ offers it over
 * HTTP, and neither imports the other (the composition root hands one to the other).
 */
export interface EchoTarget {
  aeTitle: string;
  host: string;
  port: number;
}

export interface EchoOutcome {
  ok: boolean;
  /** The C-ECHO-RSP status (0 = success); null when no response came back. */
  status: number | null;
  /** From the first byte sent to the answer (or the failure). */
  ms: number;
  error: string | null;
}

export interface EchoOptions {
  callingAe: string;
  /** Bounds the whole exchange: connect, association and the response. */
  timeoutMs: number;
}

export type EchoFunction = (target: EchoTarget, options: EchoOptions) => Promise<EchoOutcome>;
