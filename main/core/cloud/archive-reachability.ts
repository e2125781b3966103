/**
 * Whether the archive destination answers reads. Every request the reader makes says so: an answer means
 * online, a connection refused, reset or cut, an unreachable host or no answer in time means offline (an
 * answer that is an error, 404 or 403, still means the archive is there). Forwarding keeps its own view of
 * the same destination; `archiveState` gives the app whichever of the two learned something last, so a
 * clinic that only reads from its archive still sees it go offline and come back.
 */
import type { DestinationState } from '../contract/api/destinations.js';

export interface ReadReachability {
  state: 'online' | 'offline';
  /** When it became so (ms since the epoch). */
  since: number;
  /** Why the last read could not reach it; null while online. */
  lastError: string | null;
  /** The last read that told (ms since the epoch). */
  checkedAt: number;
}

/** What a read tells of the archive, for the client that makes the requests. */
export interface ReachabilityObserver {
  answered(): void;
  unreachable(reason: string): void;
}

export class ArchiveReachability implements ReachabilityObserver {
  private current: ReadReachability | undefined;

  /** @param changed called when the state turns (the first read, offline to online, or back) */
  constructor(private readonly changed: (now: ReadReachability) => void = () => undefined, private readonly now = () => Date.now()) {}

  get state(): ReadReachability | undefined {
    return this.current;
  }

  answered(): void {
    this.note('online', null);
  }

  unreachable(reason: string): void {
    this.note('offline', reason);
  }

  private note(state: ReadReachability['state'], lastError: string | null): void {
    const now = this.now();
    const turned = this.current?.state !== state;
    this.current = { state, since: turned ? now : this.current!.since, lastError, checkedAt: now };
    if (turned) this.changed(this.current);
  }
}

export interface ForwardView {
  state: DestinationState | 'unknown';
  since: number | null;
  lastError: string | null;
}

/**
 * The archive's state for the app: forwarding's, unless reads learned later whether it can be reached.
 * A state forwarding sets on a user's account (paused, sign-in needed, forbidden) stays: reads say nothing
 * about those.
 */
export function archiveState(forward: ForwardView, reads: ReadReachability | undefined): ForwardView {
  if (!reads) return forward;
  const aboutReach = forward.state === 'online' || forward.state === 'offline' || forward.state === 'idle' || forward.state === 'unknown';
  if (!aboutReach) return forward;
  if (forward.state !== 'unknown' && forward.since !== null && forward.since > reads.checkedAt) return forward;
  return { state: reads.state, since: reads.since, lastError: reads.lastError };
}
