/**
 * A part's bytes on their way to the ingest, queued, so that the fetch reads the archive's answer at its own pace
 * while the ingest takes its time: opening the temp file, hashing, the commits. It carries the parts no reader
 * takes as they arrive (a prefetch, a fetch whose readers wait for each commit, the parts after the live reader
 * left), and what goes past the spool's limits with a live reader (read-through.ts): a part that reaches its
 * fetch's or its own limit is ingested from its spool file and then from this queue, and once the fetch's limit
 * is reached, the parts after it come here too. The bytes queued for all of a fetch's ingests are bounded
 * (`LagBudget`): past that, the fetch waits for the ingests to catch up, and memory stays bounded whatever the
 * size of the study or of an instance.
 */

const MAX_BATCH_BYTES = 1024 * 1024;

/** Bytes a fetch holds for its ingests, at most (soft: one chunk may pass it). */
export class LagBudget {
  private used = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly limitBytes: number) {}

  get queuedBytes(): number {
    return this.used;
  }

  take(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (this.used >= this.limitBytes) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** Undefined while under the limit; else resolves once the ingests have taken enough. */
  room(): Promise<void> | undefined {
    if (this.used < this.limitBytes) return undefined;
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

export class IngestFeed {
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private ended = false;
  private failure: { error: unknown } | undefined;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly budget: LagBudget) {}

  /** Queues a chunk (never copied; the caller never reuses it). Returns a promise to wait for when the fetch holds too much. */
  push(chunk: Buffer): Promise<void> | undefined {
    if (this.closed || this.ended) return undefined; // the ingest stopped taking bytes: nobody needs them
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.budget.take(chunk.length);
    this.signal();
    return this.budget.room();
  }

  /** The part is whole. */
  end(): void {
    this.ended = true;
    this.signal();
  }

  /** The part broke off: the ingest gets `error` after the bytes before it. */
  fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = { error };
    this.signal();
  }

  /** The ingest is over (whether it took every byte or not): what is still queued is dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.budget.give(this.queuedBytes);
    this.queuedBytes = 0;
  }

  /** What the ingest reads: everything queued since its last read, as one handed-over batch. */
  async *source(): AsyncGenerator<readonly Buffer[]> {
    try {
      for (;;) {
        while (this.queue.length === 0 && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        if (this.queue.length > 0) {
          const batch = this.takeBatch();
          yield batch;
          continue;
        }
        if (this.failure) throw this.failure.error;
        return;
      }
    } finally {
      this.close();
    }
  }

  /** Up to a megabyte of the queue: the spool writes a batch with one writev, and a long queue is written as it goes. */
  private takeBatch(): Buffer[] {
    let count = 0;
    let bytes = 0;
    while (count < this.queue.length && bytes < MAX_BATCH_BYTES) bytes += this.queue[count++]!.length;
    const batch = count === this.queue.length ? this.queue : this.queue.slice(0, count);
    this.queue = count === this.queue.length ? [] : this.queue.slice(count);
    this.queuedBytes -= bytes;
    this.budget.give(bytes);
    return batch;
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
