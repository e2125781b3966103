/**
 * Runs the transactions of concurrent ingests as one SQLite transaction, so that one WAL fsync
 * acknowledges them all. Each caller still learns its own outcome: a task that throws rolls back only
 * itself (through a savepoint), not its neighbours.
 */
export class GroupCommitter {
  private queue: Array<{ task: () => unknown; resolve: (value: unknown) => void; reject: (error: unknown) => void }> = [];
  private scheduled = false;

  constructor(private readonly runInTransaction: (body: () => void) => void, private readonly runInSavepoint: (body: () => unknown) => unknown) {}

  commit<T>(task: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ task, resolve: resolve as (value: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate lets every ingest that is ready in this turn of the event loop join the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
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
    batch.forEach((item, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) item.resolve(outcome.value);
      else item.reject(outcome.error);
    });
  }
}
