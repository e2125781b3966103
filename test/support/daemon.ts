import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const LOG_TAIL_CHARS = 16_000;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

// A crashed or interrupted test run must not leave peers holding ports for the next run.
function killLiveDaemonsOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

export interface Daemon {
  process: ChildProcess;
  /** Resolves with the exit code (null when killed by a signal). */
  exited: Promise<number | null>;
  /** The last few KB of stdout and stderr, for error messages. */
  logTail(): string;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns a long-running peer; its output goes to logFile (when given) and to an in-memory tail. */
export function spawnDaemon(cmd: string, args: readonly string[], opts: { logFile?: string; cwd?: string } = {}): Daemon {
  killLiveDaemonsOnExit();
  const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  let tail = '';
  const capture = (chunk: Buffer): void => {
    log?.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);

  const exited = new Promise<number | null>((resolve) => {
    child.once('error', (err) => {
      tail += `\nspawn error: ${err.message}`;
      live.delete(child);
      resolve(null);
    });
    child.once('close', (code) => {
      live.delete(child);
      log?.end();
      resolve(code);
    });
  });

  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null && live.has(child);

  return {
    process: child,
    exited,
    logTail: () => tail,
    async stop(graceMs = 10_000) {
      if (!isRunning()) {
        await exited;
        return;
      }
      child.kill('SIGTERM');
      const gone = await Promise.race([exited.then(() => true), sleep(graceMs, false, { ref: false })]);
      if (!gone) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Waits for `ready`; if it fails or the daemon exits first, stops the daemon and rejects with its log tail. */
export async function untilReadyOrExit<T>(daemon: Daemon, name: string, ready: Promise<T>): Promise<T> {
  const died = daemon.exited.then((code) => {
    throw new Error(`${name} exited (code ${code}) before it was ready`);
  });
  // Whichever loses the race below must not surface later as an unhandled rejection.
  died.catch(() => {});
  ready.catch(() => {});
  try {
    return await Promise.race([ready, died]);
  } catch (err) {
    await daemon.stop();
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`${name} did not start: ${reason}; log tail:\n${daemon.logTail()}`);
  }
}
