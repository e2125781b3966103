import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger, type StreamEntry } from 'pino';
import pinoRoll from 'pino-roll';
import { GuardedLogStream, type DroppedLines, type LogDestination } from './guarded-log-stream.js';

export interface LoggingOptions {
  dataDir: string;
  level: string;
  /** Also write to stdout (headless). */
  stdout: boolean;
  /**
   * Where the file lines go instead of the rotating file under the data dir (tests); false for no file at all,
   * where stdout is already kept (the systemd journal).
   */
  file?: LogDestination | false;
  /** Told once when a destination starts failing; defaults to stderr. */
  warn?: (message: string) => void;
}

export interface LogHandle {
  logger: Logger;
  close(): Promise<void>;
}

/**
 * One JSON line per event; to a rotating file under the data dir (unless told not to), and to stdout when headless.
 * Neither destination can stop the appliance: a write that fails (a full disk) drops lines until
 * writing works again, and the log then says how many it lost.
 */
export async function createLogger(options: LoggingOptions): Promise<LogHandle> {
  if (options.file === false && !options.stdout) throw new Error('logging needs a destination: the log file or stdout');
  const file = options.file === false ? undefined : (options.file ?? (await openRollingFile(options.dataDir)));
  let logger: Logger | undefined;
  const recovered = (lost: DroppedLines) =>
    logger?.warn({ event: 'log-lines-dropped', ...lost }, `${lost.dropped} log lines were dropped while the ${lost.destination} could not be written`);
  const guarded = (target: LogDestination, name: string) => new GuardedLogStream(target, { name, warn: options.warn, recovered });
  const fileStream = file ? guarded(file, 'log file') : undefined;
  const streams: StreamEntry[] = fileStream ? [{ stream: fileStream, level: options.level as pino.Level }] : [];
  // Asynchronous, like the file: lines written while a write is under way go out together with the next one.
  // pino flushes it synchronously at exit.
  if (options.stdout) {
    streams.push({ stream: guarded(pino.destination({ fd: 1, sync: false }), 'stdout'), level: options.level as pino.Level });
  }
  logger = pino({ level: options.level, base: { app: 'dicom-edge' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams));
  return { logger, close: async () => fileStream?.close() };
}

async function openRollingFile(dataDir: string): Promise<LogDestination> {
  const dir = join(dataDir, 'logs');
  mkdirSync(dir, { recursive: true });
  return pinoRoll({ file: join(dir, 'dicom-edge.log'), size: '20m', frequency: 'daily', mkdir: true, limit: { count: 10 } });
}
