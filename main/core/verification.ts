/**
 * The Verification (C-ECHO) check of a peer, as a contract: dimse/ implements it, web/ offers it over
 * HTTP, and neither imports the other (the composition root hands one to the other).
 */
import type { EchoOutcome } from './contract/api/peers.js';

export interface EchoTarget {
  aeTitle: string;
  host: string;
  port: number;
}

/** What the check found; /api/peers/echo answers it as it is. */
export type { EchoOutcome };

export interface EchoOptions {
  callingAe: string;
  /** Bounds the whole exchange: connect, association and the response. */
  timeoutMs: number;
}

export type EchoFunction = (target: EchoTarget, options: EchoOptions) => Promise<EchoOutcome>;
