/**
 * The life of a background task that works in rounds: one round at a time (a round asked for while one runs
 * starts after it), the next one scheduled after each by the task's own delay, and stop() cutting the round
 * that runs through `signal` and waiting for it.
 */
export interface RoundLoopOptions<T> {
  /** One round's work. */
  round: () => Promise<T>;
  /** What a scheduled round does, its logging included; must not throw. */
  tick: () => Promise<unknown>;
  /** The wait before the next scheduled round, asked after each one. */
  nextDelay: () => number;
  /** The abort reason stop() gives the round running. */
  stopReason: string;
}

export class RoundLoop<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private isStopped = true;
  private controller = new AbortController();

  constructor(private readonly options: RoundLoopOptions<T>) {}

  /** Aborted by stop(): requests of the round running pass it on. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get stopped(): boolean {
    return this.isStopped;
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

  private schedule(delayMs: number): void {
    if (this.isStopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.options.tick().finally(() => this.schedule(this.options.nextDelay()));
    }, delayMs);
    this.timer.unref?.();
  }
}
