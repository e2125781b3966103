// Fault modes of the Azure DICOM double and the bookkeeping that decides, request by request and
// instance by instance, what the active fault does. Faults act on store (STOW-RS) requests,
// except 'down', which acts on every connection, the '-retrieve' ones, which act on WADO-RS retrieves, and
// 'hold-changefeed', which acts on change-feed requests.

export type Fault =
  /** Read part of the body (default: half its Content-Length), then destroy the socket; nothing is stored. */
  | { kind: 'drop-mid-body'; afterBytes?: number; times?: number }
  /** Store everything, then destroy the socket instead of answering (a lost response). */
  | { kind: 'drop-after-store'; times?: number }
  /** Wait `ms` before answering (after storing, unless beforeStore). */
  | { kind: 'delay'; ms: number; beforeStore?: boolean; times?: number }
  /** Answer every store with this status (e.g. 503, 429, 500), optionally with Retry-After; nothing is stored. */
  | { kind: 'status'; status: number; retryAfter?: number | string; times?: number }
  /** Alternate: `every` requests answered normally, then `every` requests down, and so on. */
  | { kind: 'flap'; every: number; startDown?: boolean; down?: 'close' | { status: number; retryAfter?: number | string } }
  /** Connections reset at once ('reset', default) or refused because nothing listens ('refuse'). */
  | { kind: 'down'; mode?: 'reset' | 'refuse' }
  /** 413 when the body is larger than maxBytes or holds more than maxInstances parts; nothing is stored. */
  | { kind: 'too-large'; maxBytes?: number; maxInstances?: number; times?: number }
  /** These SOP instances always fail with `reason` (default 43264, validation failed). */
  | { kind: 'reject-instance'; sopUids: string[]; reason?: number }
  /** These SOP instances (all if none given) fail with 45071 for their first `failures` attempts (default 1). */
  | { kind: 'transient-45071'; sopUids?: string[]; failures?: number }
  /** These SOP instances (all if none given) are stored with WarningReason `reason` (default 45063) → 202. */
  | { kind: 'warning'; sopUids?: string[]; reason?: number; times?: number }
  /** A retrieve sends `afterParts` whole parts and half of the next one, then destroys the socket (an upstream killed mid-fetch). */
  | { kind: 'cut-retrieve'; afterParts: number; times?: number }
  /** A retrieve waits `ms` before it answers (a slow archive), so that readers arriving meanwhile find the fetch running. */
  | { kind: 'slow-retrieve'; ms: number; times?: number }
  /** A retrieve sends `afterParts` whole parts, then waits for `until` before it sends the rest (an archive that stalls mid-study). */
  | { kind: 'hold-retrieve'; afterParts: number; until: Promise<unknown>; times?: number }
  /** The first `afterRequests` change-feed requests are answered at once; later ones wait for `until` (a feed that stalls). */
  | { kind: 'hold-changefeed'; afterRequests: number; until: Promise<unknown> };

export type FaultKind = Fault['kind'];

/** What the fault does to one store request as a whole. */
export type RequestAction =
  | { kind: 'none' }
  | { kind: 'status'; status: number; retryAfter?: number | string }
  | { kind: 'close' }
  | { kind: 'drop-mid-body'; afterBytes?: number }
  | { kind: 'drop-after-store' }
  | { kind: 'delay'; ms: number; beforeStore: boolean }
  | { kind: 'too-large'; maxBytes?: number; maxInstances?: number };

export class FaultState {
  private fault: Fault | undefined;
  private remaining = Infinity;
  private storeRequests = 0;
  private changeFeedRequests = 0;
  private readonly attempts = new Map<string, number>();

  get active(): Fault | undefined {
    return this.fault;
  }

  set(fault: Fault | undefined): void {
    this.fault = fault;
    this.remaining = fault && 'times' in fault && fault.times !== undefined ? fault.times : Infinity;
    this.storeRequests = 0;
    this.changeFeedRequests = 0;
    this.attempts.clear();
  }

  /** Called once per store request; counts down `times` and clears the fault when it runs out. */
  forStoreRequest(): RequestAction {
    const fault = this.fault;
    if (!fault || fault.kind === 'down' || fault.kind === 'cut-retrieve' || fault.kind === 'slow-retrieve' || fault.kind === 'hold-retrieve' || fault.kind === 'hold-changefeed') return { kind: 'none' };
    const n = this.storeRequests++;
    let action: RequestAction = { kind: 'none' };
    switch (fault.kind) {
      case 'status':
        action = { kind: 'status', status: fault.status, retryAfter: fault.retryAfter };
        break;
      case 'flap': {
        const downPhase = Math.floor(n / Math.max(1, fault.every)) % 2 === (fault.startDown ? 0 : 1);
        if (downPhase) {
          const down = fault.down ?? { status: 503 };
          action = down === 'close' ? { kind: 'close' } : { kind: 'status', status: down.status, retryAfter: down.retryAfter };
        }
        break;
      }
      case 'drop-mid-body':
        action = { kind: 'drop-mid-body', afterBytes: fault.afterBytes };
        break;
      case 'drop-after-store':
        action = { kind: 'drop-after-store' };
        break;
      case 'delay':
        action = { kind: 'delay', ms: fault.ms, beforeStore: fault.beforeStore ?? false };
        break;
      case 'too-large':
        action = { kind: 'too-large', maxBytes: fault.maxBytes, maxInstances: fault.maxInstances };
        break;
      default:
        return { kind: 'none' }; // instance-level faults count their own way
    }
    this.countDown();
    return action;
  }

  /**
   * Called once per retrieve request: a wait before answering, how many whole parts to send before cutting the
   * connection, or before waiting for `until`.
   */
  forRetrieveRequest(): { afterParts: number; until?: Promise<unknown> } | { delayMs: number } | undefined {
    const fault = this.fault;
    if (fault?.kind !== 'cut-retrieve' && fault?.kind !== 'slow-retrieve' && fault?.kind !== 'hold-retrieve') return undefined;
    this.countDown();
    if (fault.kind === 'slow-retrieve') return { delayMs: fault.ms };
    return fault.kind === 'cut-retrieve' ? { afterParts: fault.afterParts } : { afterParts: fault.afterParts, until: fault.until };
  }

  /** Called once per change-feed request: what to wait for before answering it, if anything. */
  forChangeFeedRequest(): Promise<unknown> | undefined {
    const fault = this.fault;
    if (fault?.kind !== 'hold-changefeed') return undefined;
    return this.changeFeedRequests++ < fault.afterRequests ? undefined : fault.until;
  }

  /** A failure reason the fault imposes on this instance, if any. */
  instanceFailure(sopUid: string): number | undefined {
    const fault = this.fault;
    if (fault?.kind === 'reject-instance' && fault.sopUids.includes(sopUid)) return fault.reason ?? 43264;
    if (fault?.kind === 'transient-45071' && (!fault.sopUids || fault.sopUids.includes(sopUid))) {
      const seen = this.attempts.get(sopUid) ?? 0;
      this.attempts.set(sopUid, seen + 1);
      if (seen < (fault.failures ?? 1)) return 45071;
    }
    return undefined;
  }

  /** A warning reason the fault imposes on this stored instance, if any. */
  instanceWarning(sopUid: string): number | undefined {
    const fault = this.fault;
    if (fault?.kind !== 'warning' || (fault.sopUids && !fault.sopUids.includes(sopUid))) return undefined;
    return fault.reason ?? 45063;
  }

  /** Called once per store request that the 'warning' fault touched. */
  warningRequestDone(): void {
    if (this.fault?.kind === 'warning') this.countDown();
  }

  private countDown(): void {
    this.remaining -= 1;
    if (this.remaining <= 0) this.set(undefined);
  }
}
