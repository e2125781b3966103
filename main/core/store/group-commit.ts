/** A batch committed, but making it durable failed: its rows may or may not survive a power loss. */
export class CommitNotDurableError extends Error {
  override name = 'CommitNotDurableError';
}

/**
 * Runs the transactions of concurrent ingests as one SQLite transaction, so that one WAL fsync
 * acknowledges them all. Each caller still learns its own outcome: a task that throws rolls back only
 * itself (through a savepoint), not its neighbours. A caller's promise resolves only once `makeDurable`
 * (the fsync, run off the event loop) has finished after the commit; meanwhile the next batch may commit.
 *
 * An ingest announces itself once its file is written (`announce()`), a few milliseconds before it
 * asks to commit (header parse, rename, directory fsync). A batch waits for the announced ingests,
 * but never longer than `maxWaitMs`: each commit blocks the event loop for its WAL fsync and costs
 * about as much as several rows, so fewer, larger batches leave more time for receiving.
 */
export class GroupCommitter {
  private queue: Array<{ task: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private announced = 0;

  constructor(
    private readonly runInTransaction: (body: () => void) => void,
    private readonly runInSavepoint: (body: () => unknown) => unknown,
    private readonly makeDurable: () => Promise<void> = async () => undefined,
    private readonly maxWaitMs = 2,
  ) {}

  /** An ingest that will soon commit; the ticket commits its task, or withdraws if it fails before. */
  announce(): CommitTicket {
    this.announced++;
    let open = true;
    const close = () => {
      if (!open) return false;
      open = false;
      this.announced--;
      return true;
    };
    return {
      commit: <T>(task: () => T) => {
        close();
        return this.enqueue(task);
      },
      withdraw: () => {
        if (close()) this.maybeFlushSoon();
      },
    };
  }

  /** Commits `task` with whatever else is ready, without waiting for announced ingests. */
  commit<T>(task: () => T): Promise<T> {
    return this.enqueue(task);
  }

  private enqueue<T>(task: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ task, resolve: resolve as (value: unknown) => void, reject });
      if (this.queue.length === 1) this.timer = setTimeout(() => this.flushSoon(), this.maxWaitMs);
      this.maybeFlushSoon();
    });
  }

  private maybeFlushSoon(): void {
    if (this.queue.length > 0 && this.announced === 0) this.flushSoon();
  }

  private flushSoon(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate lets every ingest that is ready in this turn of the event loop join the batch.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      this.runInTransaction(() => {
        for (const item of batch) {
          try {
            outcomes.push({ ok: true, value: this.runInSavepoint(item.task) });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
      });
    } catch (error) {
      // The commit itself failed: nobody in the batch is durable.
      for (const item of batch) item.reject(error);
      return;
    }
    this.makeDurable().then(
      () => batch.forEach((item, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) item.resolve(outcome.value);
        else item.reject(outcome.error);
      }),
      (error: unknown) => batch.forEach((item, i) => {
        const outcome = outcomes[i]!;
        if (outcome.ok) item.reject(new CommitNotDurableError(`the index commit could not be synced to disk: ${(error as Error)?.message ?? String(error)}`));
        else item.reject(outcome.error);
      }),
    );
  }
}

export interface CommitTicket {
  commit<T>(task: () => T): Promise<T>;
  /** Idempotent; a no-op after `commit`. */
  withdraw(): void;
}
