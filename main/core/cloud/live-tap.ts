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
}

export type LiveNext = { part: LivePart } | { end: 'complete' | 'follow' };

/** What the fetch does with one part's bytes for the tap; every call is a no-op once the reader has left. */
export interface LiveLane {
  /** Resolves once the reader has taken the chunk (its socket accepted it). */
  write(chunk: Buffer): Promise<void>;
  end(): void;
  fail(error: unknown): void;
}

/** A chunk handed over, or the end of the part (`error` when it broke off). */
type Item = { chunk: Buffer; taken: () => void } | { done: true; error?: unknown };

export class LiveTap {
  /** SOP Instance UIDs of the parts the reader was given that have since been committed. */
  readonly deliveredSops = new Set<string>();
  private readonly parts: LiveNext[] = [];
  /** Chunks handed over and not yet taken: released when the reader leaves. */
  private readonly untaken = new Set<() => void>();
  private partWaiter: (() => void) | undefined;
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
    const items: Item[] = [];
    let itemWaiter: (() => void) | undefined;
    const push = (item: Item) => {
      items.push(item);
      itemWaiter?.();
    };
    const tap = this;
    async function* body(): AsyncGenerator<Buffer> {
      for (;;) {
        while (items.length === 0) await new Promise<void>((resolve) => (itemWaiter = resolve));
        itemWaiter = undefined;
        const item = items.shift()!;
        if ('done' in item) {
          if (item.error !== undefined) throw item.error;
          return;
        }
        try {
          yield item.chunk;
        } finally {
          item.taken();
        }
      }
    }
    this.push({ part: { transferSyntax, body: body() } });
    let ended = false;
    return {
      write: (chunk) => {
        if (ended || tap.left) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const taken = () => {
            tap.untaken.delete(taken);
            resolve();
          };
          tap.untaken.add(taken);
          push({ chunk, taken });
        });
      },
      end: () => {
        if (ended) return;
        ended = true;
        push({ done: true });
      },
      fail: (error) => {
        if (ended) return;
        ended = true;
        push({ done: true, error });
      },
    };
  }

  /** A part given to the reader was committed as this instance. */
  delivered(sopInstanceUid: string): void {
    this.deliveredSops.add(sopInstanceUid);
  }

  /** The fetch read the archive's whole answer; `complete` when every part went through the tap. */
  finish(): void {
    this.close(this.declined || this.left ? 'follow' : 'complete');
  }

  /** The fetch ended without `finish` (failed, or fetched otherwise): the reader follows its commits. */
  release(): void {
    this.close('follow');
  }

  /** The next part, or the end. */
  async next(): Promise<LiveNext> {
    while (this.parts.length === 0) await new Promise<void>((resolve) => (this.partWaiter = resolve));
    this.partWaiter = undefined;
    return this.parts.shift()!;
  }

  /** The reader is gone: nothing more is offered, and the fetch stops waiting for it. */
  leave(): void {
    this.left = true;
    for (const taken of [...this.untaken]) taken();
  }

  get hasLeft(): boolean {
    return this.left;
  }

  private close(end: 'complete' | 'follow'): void {
    if (this.closed) return;
    this.closed = true;
    this.push({ end });
  }

  private push(next: LiveNext): void {
    this.parts.push(next);
    this.partWaiter?.();
  }
}

