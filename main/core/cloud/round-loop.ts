/**
 * The life of a background task that works in rounds: one round at a time (a round asked for while one runs
 * starts after it), the next one scheduled after each by the task's own delay, and stop() cutting the round
 * that runs through `signal` and waiting for it. A task that gives `reports` has its scheduled rounds' failures
 * counted (for its backoff) and told, with whether each is the first of an outage or gives a new reason, and the
 * round that ends an outage told once; the task states only what it logs.
 */
export type RoundLoopOptions<T> = {
  /** One round's work. */
  round: () => Promise<T>;
  /** The wait before the next scheduled round, asked after each one. */
  nextDelay: () => number;
  /** The abort reason stop() gives the round running. */
  stopReason: string;
} & (
  /** What a scheduled round does, its logging included; must not throw. */
  | { tick: () => Promise<unknown>; reports?: never }
  /** What scheduled rounds tell: the loop runs each as reportedRound(). */
  | { reports: RoundReports; tick?: never }
);

/** A scheduled round that failed; not one cut by stop(). */
export interface RoundFailure {
  error: unknown;
  /** The error's message. */
  reason: string;
  /** The first failure since the last round that succeeded (or since the loop was made). */
  first: boolean;
  /** Its reason is not the last failure's (true for the first). */
  newReason: boolean;
}

export interface RoundReports {
  /** Told after `failures` counts the round; must not throw. */
  failed(failure: RoundFailure): void;
  /** The first round to succeed after `failures` scheduled ones failed, `offlineMs` after the first of them failed. */
  resumed(outage: { failures: number; offlineMs: number }): void;
}

export class RoundLoop<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private isStopped = true;
  private controller = new AbortController();
  private failuresInARow = 0;
  private outageSince: number | undefined;
  private lastReason: string | undefined;

  constructor(private readonly options: RoundLoopOptions<T>) {}

  /** Aborted by stop(): requests of the round running pass it on. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stopped(): boolean {
    return this.isStopped;
  }

  /** Scheduled rounds failed since the last one that succeeded (the task's backoff). */
  get failures(): number {
    return this.failuresInARow;
  }

  /** Schedules the first round at once. */
  start(): void {
    this.isStopped = false;
    this.controller = new AbortController();
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.controller.abort(new Error(this.options.stopReason));
    await this.running?.catch(() => undefined);
  }

  /** One round now, or after the one running; rejects as the round does. */
  runOnce(): Promise<T> {
    const round = (this.running ?? Promise.resolve()).catch(() => undefined).then(() => this.options.round());
    this.running = round;
    return round;
  }

  /** One scheduled round, its failure or its end of an outage told to `reports`; never rejects (undefined when it failed). */
  async reportedRound(): Promise<T | undefined> {
    try {
      const round = await this.runOnce();
      if (this.outageSince !== undefined) this.options.reports?.resumed({ failures: this.failuresInARow, offlineMs: Date.now() - this.outageSince });
      this.failuresInARow = 0;
      this.outageSince = undefined;
      this.lastReason = undefined;
      return round;
    } catch (error) {
      if (this.signal.aborted) return undefined; // cut by stop(), not a failure of the task
      this.failuresInARow++;
      const reason = (error as Error)?.message ?? String(error);
      const first = this.outageSince === undefined;
      if (first) this.outageSince = Date.now();
      this.options.reports?.failed({ error, reason, first, newReason: reason !== this.lastReason });
      this.lastReason = reason;
      return undefined;
    }
  }

  private schedule(delayMs: number): void {
    if (this.isStopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const tick = this.options.tick ? this.options.tick() : this.reportedRound();
      void tick.finally(() => this.schedule(this.options.nextDelay()));
    }, delayMs);
    this.timer.unref?.();
  }
}
