import type { EventEmitter } from 'node:events';
import { writeSync } from 'node:fs';

/** A log destination as pino-roll and pino.destination make it: a SonicBoom. */
export interface LogDestination extends EventEmitter {
  write(line: string): boolean;
  end(): void;
  destroy(): void;
  /** Set by SonicBoom once closed (its typings leave it out). */
  readonly destroyed?: boolean;
}

export interface DroppedLines {
  /** Which destination: 'log file', 'stdout'. */
  destination: string;
  dropped: number;
  /** The error code of the failed write, e.g. ENOSPC. */
  reason: string;
  /** When writing started to fail (ISO time). */
  since: string;
}

export interface GuardOptions {
  /** Names the destination in the messages. */
  name: string;
  /** Told once per failure, when writing starts to fail; by default a line on stderr. */
  warn?: (message: string) => void;
  /** Told once writing works again, with what was lost meanwhile. */
  recovered?: (dropped: DroppedLines) => void;
  /** While writes fail, one line goes through as a retry at most this often; the others are dropped. */
  retryMs?: number;
  now?: () => number;
}

const DEFAULT_RETRY_MS = 1_000;

/**
 * Keeps a log destination that cannot write (a full disk, ENOSPC, or any other write error) from taking
 * the appliance down: SonicBoom reports a failed write as an 'error' event, which ends the process when
 * nobody listens. While writes fail, lines are dropped and counted, and one line at most every `retryMs`
 * goes through as a retry (SonicBoom keeps the unwritten bytes and tries them again first). Once a write
 * gets through ('drain'), the count is reported, so the log says what is missing from it.
 */
export class GuardedLogStream {
  private failure: { reason: string; since: number; dropped: number; lastTry: number } | undefined;
  private readonly retryMs: number;
  private readonly now: () => number;

  constructor(private readonly target: LogDestination, private readonly options: GuardOptions) {
    this.retryMs = options.retryMs ?? DEFAULT_RETRY_MS;
    this.now = options.now ?? Date.now;
    target.on('error', (error: unknown) => this.failed(error));
    target.on('drain', () => this.drained());
  }

  /** True while writes fail and lines are dropped. */
  get failing(): boolean {
    return this.failure !== undefined;
  }

  write(line: string): boolean {
    const failure = this.failure;
    if (failure) {
      const now = this.now();
      if (now - failure.lastTry < this.retryMs) {
        failure.dropped++;
        return true;
      }
      failure.lastTry = now;
    }
    try {
      this.target.write(line);
    } catch (error) {
      // SonicBoom throws once destroyed; a line logged that late is dropped like any other.
      this.failed(error);
    }
    // Always "keep writing": a logger must never wait on its destination.
    return true;
  }

  /** Flushes and closes; gives up on the unwritten rest when the destination cannot take it. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.target.destroyed) return resolve();
      this.target.once('close', () => resolve());
      if (this.failure) {
        this.target.destroy();
        return;
      }
      this.target.once('error', () => this.target.destroy());
      this.target.end();
    });
  }

  private failed(error: unknown): void {
    const now = this.now();
    if (this.failure) {
      this.failure.lastTry = now;
      return;
    }
    const code = (error as NodeJS.ErrnoException)?.code ?? 'EIO';
    this.failure = { reason: code, since: now, dropped: 0, lastTry: now };
    const message = `dicom-edge: cannot write to the ${this.options.name} (${(error as Error)?.message ?? String(error)}); `
      + 'log lines are dropped until writing works again';
    (this.options.warn ?? warnOnStderr)(message);
  }

  private drained(): void {
    const failure = this.failure;
    if (!failure) return;
    this.failure = undefined;
    this.options.recovered?.({
      destination: this.options.name, dropped: failure.dropped, reason: failure.reason, since: new Date(failure.since).toISOString(),
    });
  }
}

/** Synchronous, and silent when stderr itself is gone: this runs exactly when writing is failing. */
function warnOnStderr(message: string): void {
  try {
    writeSync(2, `${message}\n`);
  } catch {
    /* nowhere left to say it */
  }
}
