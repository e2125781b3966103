/**
 * One upstream fetch in progress, and everyone waiting on it: the instances it has committed so far, in
 * order, for followers that join at any time, then its end (or its failure). Followers never slow the fetch:
 * the list only holds index rows, and each follower reads it at its own pace.
 */
import type { InstanceLocation, InstanceScope } from '../store/instance-locations.js';
import type { LiveTap } from './live-tap.js';

/** One part of the archive's answer, known by identity from its first byte until its ingest settles it. */
export type AnswerPart = object;

/** A whole part of the answer on disk in its spool file, waiting for its ingest (see spooled-part.ts). */
export interface SpooledPart {
  path: string;
  /** As the archive named it, or as its meta header gives it. */
  transferSyntax: string;
  /** Its ingest has taken the file (into place, or dropped it): a follower gets the instance from the commits. */
  taken: boolean;
  /** The part of the fetch's answer it is. */
  answerPart: AnswerPart;
}

export class FetchFlight {
  readonly committed: InstanceLocation[] = [];
  /** Whole parts of the answer waiting on disk for their ingest, in order: followers need not wait for it. */
  readonly spooled: SpooledPart[] = [];
  readonly controller = new AbortController();
  /** Settles when the work ends; never rejects (failures are in `failure`). */
  readonly finished: Promise<void>;
  /**
   * Settles once the index lists what the archive holds of the scope (the fetch's listing is in, or it
   * needed none); rejects with the fetch's failure when it ended before that.
   */
  readonly listed: Promise<void>;
  private settleListed!: (error?: unknown) => void;
  private readonly unsettledParts = new Set<AnswerPart>();
  private answerRead = false;
  private partFailed = false;
  private listingWanted: (() => void) | undefined;
  private ended = false;
  private error: unknown;
  private waiters = new Set<() => void>();

  /**
   * @param tap the reader that started the fetch, given the archive's bytes as they arrive (set before the
   * work starts, which is on a later tick)
   */
  constructor(readonly scope: InstanceScope, work: (flight: FetchFlight) => Promise<void>, readonly tap?: LiveTap) {
    let settled = false;
    this.listed = new Promise<void>((resolve, reject) => {
      this.settleListed = (error) => {
        if (settled) return;
        settled = true;
        if (error === undefined) resolve();
        else reject(error);
      };
    });
    this.listed.catch(() => undefined); // awaited only by those who ask for the listing
    this.finished = Promise.resolve()
      .then(() => work(this))
      .catch((error: unknown) => {
        this.error = error;
      })
      .finally(() => {
        this.tap?.release();
        this.settleListed(this.error);
        this.ended = true;
        this.wake();
      });
  }

  get done(): boolean {
    return this.ended;
  }

  get failure(): unknown {
    return this.error;
  }

  /** Whether every instance `scope` asks for is within this flight's scope. */
  covers(scope: InstanceScope): boolean {
    const own = this.scope;
    if (own.studyUid !== scope.studyUid) return false;
    if (own.seriesUid !== undefined && own.seriesUid !== scope.seriesUid) return false;
    if (own.sopInstanceUid !== undefined && own.sopInstanceUid !== scope.sopInstanceUid) return false;
    return true;
  }

  /** A fetch whose listing waits until it is needed says how to start it now. */
  listWhenWanted(start: () => void): void {
    this.listingWanted = start;
  }

  /** Someone waits for `listed`: a listing the fetch put off starts now. */
  wantListing(): void {
    this.listingWanted?.();
  }

  /** The index now lists the scope as the archive holds it (or `error`: the archive could not be asked). */
  listingDone(error?: unknown): void {
    this.settleListed(error);
  }

  add(instance: InstanceLocation): void {
    this.committed.push(instance);
    this.wake();
  }

  /** A part of the archive's answer begins; it is unsettled until `partSettled`. */
  partStarted(): AnswerPart {
    const part: AnswerPart = {};
    this.unsettledParts.add(part);
    return part;
  }

  /** The part's ingest committed it, or left it out (`failed`: with an error that fails the fetch). */
  partSettled(part: AnswerPart, failed: boolean): void {
    this.unsettledParts.delete(part);
    if (failed) this.partFailed = true;
    this.wake();
  }

  /** The fetch has read the archive's whole answer for its scope: no part begins after this. */
  answerWhole(): void {
    this.answerRead = true;
    this.wake();
  }

  /**
   * Whether a follower that was given the parts in `served` from their spool files now has every instance the
   * answer gives (the rest committed): it need not wait for the fetch's end.
   */
  givenAll(served: ReadonlySet<AnswerPart>): boolean {
    if (!this.answerRead || this.partFailed) return false;
    for (const part of this.unsettledParts) if (!served.has(part)) return false;
    return true;
  }

  /** A whole part is on disk, waiting for its ingest (which marks it `taken`). */
  addSpooled(part: SpooledPart): void {
    this.spooled.push(part);
    this.wake();
  }

  /**
   * Every instance the flight commits, from its first, then the end; rejects with the flight's failure
   * after the instances committed before it. `signal` stops the waiting (not the flight).
   */
  async *follow(signal?: AbortSignal): AsyncGenerator<InstanceLocation> {
    for await (const item of this.followWithSpooled(signal, false)) if (!('spooled' in item)) yield item.instance;
  }

  /**
   * Like `follow`, with each part spooled before its commit as soon as it is whole on disk (and not yet taken by
   * its ingest when the follower reaches it): the same instance may then come again committed. Ends early once
   * `givenAll` says the follower has every instance.
   */
  async *followWithSpooled(signal?: AbortSignal, withSpooled = true, givenAll?: () => boolean): AsyncGenerator<{ spooled: SpooledPart } | { instance: InstanceLocation }> {
    let next = 0;
    let nextSpooled = 0;
    for (;;) {
      while (withSpooled && nextSpooled < this.spooled.length) {
        const part = this.spooled[nextSpooled++]!;
        if (!part.taken) yield { spooled: part };
      }
      while (next < this.committed.length) yield { instance: this.committed[next++]! };
      if (withSpooled && nextSpooled < this.spooled.length) continue;
      if (givenAll?.()) return;
      if (this.ended) {
        if (this.error !== undefined) throw this.error;
        return;
      }
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const done = () => {
          this.waiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        this.waiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
}
