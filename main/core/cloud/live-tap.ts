import { uidProblem } from '../dicom/uid.js';

/**
 * The archive's parts handed to the one reader that started a fetch as their bytes arrive, while the same
 * bytes are written through the ingest: that reader does not wait for any fsync or commit. The fetch goes at
 * the pace of the slower of the disk and that reader (each chunk is passed on, never buffered), and the reader
 * may leave at any time (the fetch then goes on for the index and for followers).
 *
 * How the reader learns the rest: `next()` gives each part, then the end, which says whether every part of
 * the fetch came through the tap ('complete') or the reader must follow the fetch's commits for the rest
 * ('follow': a part it declined, a fetch of a partly local scope, a fetch that failed before its answer).
 */

export interface LivePart {
  /** The part's transfer syntax, as the archive named it (a tap is only offered parts that name a valid UID). */
  transferSyntax: string;
  /** The part's bytes as they arrive; throws when the archive's answer breaks off inside the part. */
  body: AsyncIterable<Buffer>;
  /**
   * The reader stops taking this part (e.g. it is too large to hold): what it has not taken is dropped, the
   * fetch no longer waits for it on this part, and the reader gets the instance from its commit instead (the
   * tap's end is then 'follow'). Leaving the body before its end declines the part too.
   */
  decline(): void;
}

export type LiveNext = { part: LivePart } | { end: 'complete' | 'follow' };

/** What the fetch does with one part's bytes for the tap; writes are no-ops once the reader has left or declined the part. */
export interface LiveLane {
  /**
   * Hands a chunk over; resolves once the reader has room for more (at most READ_AHEAD_BYTES handed over and not
   * yet taken, over every part), or has declined the part or left.
   */
  write(chunk: Buffer): Promise<void>;
  end(): void;
  fail(error: unknown): void;
  /** Whether the reader is taking the part (it has not declined it). */
  readonly taking: boolean;
  /** The part was committed as this instance: a reader that took it whole does not get it again from the commits. */
  committed(sopInstanceUid: string): void;
}

/**
 * How far the fetch may run ahead of the reader, in bytes handed over and not yet taken: while the reader's
 * socket drains, the next chunks are read from the archive instead of each waiting for the one before.
 */
const READ_AHEAD_BYTES = 1024 * 1024;

/** A chunk handed over, or the end of the part (`error` when it broke off). */
type Item = { chunk: Buffer; taken: () => void } | { done: true; error?: unknown };

/** What a lane needs of its tap. */
interface LaneOwner {
  readonly gone: () => boolean;
  readonly declined: () => void;
  /** The lane's part ended or was declined: the fetch waits for nothing more of it. */
  readonly settled: () => void;
  readonly deliveredSops: Set<string>;
  /** Bytes handed over, and bytes taken (or dropped): the read-ahead the fetch may have. */
  readonly gave: (bytes: number) => void;
  readonly took: (bytes: number) => void;
  /** Resolves once the reader has room for more. */
  readonly room: () => Promise<void>;
}

/** One part on its way to the reader: the fetch writes it, the reader takes it (or declines it). */
class Lane implements LiveLane {
  readonly part: LivePart;
  private readonly items: Item[] = [];
  private itemWaiter: (() => void) | undefined;
  /** Chunks handed over and not yet taken: released when the reader declines the part or leaves. */
  private readonly untaken = new Set<() => void>();
  private ended = false;
  private declined = false;
  private sopInstanceUid: string | undefined;

  constructor(transferSyntax: string, private readonly owner: LaneOwner) {
    this.part = { transferSyntax, body: this.body(), decline: () => this.decline() };
  }

  get taking(): boolean {
    return !this.declined;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.ended || this.declined || this.owner.gone()) return Promise.resolve();
    const taken = () => {
      if (this.untaken.delete(taken)) this.owner.took(chunk.length);
    };
    this.untaken.add(taken);
    this.owner.gave(chunk.length);
    this.push({ chunk, taken });
    return this.owner.room();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.push({ done: true });
    this.owner.settled();
  }

  fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.push({ done: true, error });
    this.owner.settled();
  }

  committed(sopInstanceUid: string): void {
    this.sopInstanceUid = sopInstanceUid;
    if (!this.declined) this.owner.deliveredSops.add(sopInstanceUid);
  }

  /** The fetch stops waiting for the reader on this part. */
  release(): void {
    for (const taken of [...this.untaken]) taken();
  }

  private decline(): void {
    if (this.declined) return;
    this.declined = true;
    this.items.length = 0;
    this.release();
    if (this.sopInstanceUid !== undefined) this.owner.deliveredSops.delete(this.sopInstanceUid);
    this.owner.declined();
    this.owner.settled();
    this.itemWaiter?.();
  }

  private push(item: Item): void {
    if (this.declined) return;
    this.items.push(item);
    this.itemWaiter?.();
  }

  private async *body(): AsyncGenerator<Buffer> {
    let whole = false;
    try {
      for (;;) {
        while (this.items.length === 0 && !this.declined) await new Promise<void>((resolve) => (this.itemWaiter = resolve));
        this.itemWaiter = undefined;
        if (this.declined) return;
        const item = this.items.shift()!;
        if ('done' in item) {
          whole = true;
          if (item.error !== undefined) throw item.error;
          return;
        }
        try {
          yield item.chunk;
        } finally {
          item.taken();
        }
      }
    } finally {
      // A reader that stops before the end does not hold the fetch back on this part, and gets it committed.
      if (!whole) this.decline();
    }
  }
}

export class LiveTap {
  /** SOP Instance UIDs of the parts the reader took whole that have since been committed. */
  readonly deliveredSops = new Set<string>();
  private readonly parts: LiveNext[] = [];
  /** Lanes the fetch may still be waiting on: released when the reader leaves. */
  private readonly lanes = new Set<Lane>();
  private partWaiter: (() => void) | undefined;
  private untakenBytes = 0;
  /** The fetch waiting for room, and whoever waits for the reader to take everything. */
  private roomWaiters: Array<() => void> = [];
  private allTakenWaiters: Array<() => void> = [];
  private closed = false;
  private left = false;
  private declined = false;

  /** @param accepts whether the reader takes a part in this transfer syntax as it is */
  constructor(private readonly accepts: (transferSyntax: string) => boolean) {}

  /** Whether a part offered now could be taken (the reader is still there and the answer not finished). */
  get listening(): boolean {
    return !this.closed && !this.left;
  }

  /**
   * A part of the answer starts, in `transferSyntax` (from its Content-Type, or its meta header). Returns the
   * lane to feed its bytes to, or undefined when the reader does not take it (left, or declined its syntax);
   * it then gets that instance from the commits instead.
   */
  offer(transferSyntax: string | undefined): LiveLane | undefined {
    if (!this.listening) return undefined;
    if (transferSyntax === undefined || uidProblem(transferSyntax) !== undefined || !this.accepts(transferSyntax)) {
      this.declined = true;
      return undefined;
    }
    const lane: Lane = new Lane(transferSyntax, {
      gone: () => this.left,
      declined: () => (this.declined = true),
      settled: () => this.lanes.delete(lane),
      deliveredSops: this.deliveredSops,
      gave: (bytes) => (this.untakenBytes += bytes),
      took: (bytes) => this.took(bytes),
      room: () => (this.untakenBytes <= READ_AHEAD_BYTES || this.left ? Promise.resolve() : new Promise<void>((resolve) => this.roomWaiters.push(resolve))),
    });
    this.lanes.add(lane);
    this.push({ part: lane.part });
    return lane;
  }

  /** The fetch read the archive's whole answer; the end is `complete` if every part went to the reader whole. */
  finish(): void {
    this.close('complete');
  }

  /** The fetch ended without `finish` (failed, or fetched otherwise): the reader follows its commits. */
  release(): void {
    this.close('follow');
  }

  /** Resolves once the reader has taken every byte handed over (or dropped what it declined), or has left. */
  allTaken(): Promise<void> {
    if (this.untakenBytes === 0 || this.left) return Promise.resolve();
    return new Promise<void>((resolve) => this.allTakenWaiters.push(resolve));
  }

  /** The next part, or the end. */
  async next(): Promise<LiveNext> {
    while (this.parts.length === 0) await new Promise<void>((resolve) => (this.partWaiter = resolve));
    this.partWaiter = undefined;
    const next = this.parts.shift()!;
    // Decided as the reader reaches the end: it may have declined the last part after the fetch finished.
    if ('end' in next && (this.declined || this.left)) return { end: 'follow' };
    return next;
  }

  /** The reader is gone: nothing more is offered, and the fetch stops waiting for it. */
  leave(): void {
    this.left = true;
    for (const lane of this.lanes) lane.release();
    this.lanes.clear();
    for (const wake of [...this.roomWaiters.splice(0), ...this.allTakenWaiters.splice(0)]) wake();
  }

  private took(bytes: number): void {
    this.untakenBytes -= bytes;
    if (this.untakenBytes <= READ_AHEAD_BYTES) for (const wake of this.roomWaiters.splice(0)) wake();
    if (this.untakenBytes === 0) for (const wake of this.allTakenWaiters.splice(0)) wake();
  }

  get hasLeft(): boolean {
    return this.left;
  }

  private close(end: 'complete' | 'follow'): void {
    if (this.closed) return;
    this.closed = true;
    this.lanes.clear();
    this.push({ end });
  }

  private push(next: LiveNext): void {
    this.parts.push(next);
    this.partWaiter?.();
  }
}
