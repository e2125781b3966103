import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type Logger, type StreamEntry } from 'pino';
import pinoRoll from 'pino-roll';

export interface LoggingOptions {
  dataDir: string;
  level: string;
  /** Also write to stdout (headless). */
  stdout: boolean;
}

export interface LogHandle {
  logger: Logger;
  close(): Promise<void>;
}

/** One JSON line per event; always to a rotating file under the data dir, and to stdout when headless. */
export async function createLogger(options: LoggingOptions): Promise<LogHandle> {
  const dir = join(options.dataDir, 'logs');
  mkdirSync(dir, { recursive: true });
  const file = await pinoRoll({ file: join(dir, 'dicom-edge.log'), size: '20m', frequency: 'daily', mkdir: true, limit: { count: 10 } });
  const streams: StreamEntry[] = [{ stream: file, level: options.level as pino.Level }];
  // Asynchronous, like the file: lines written while a write is under way go out together with the next one.
  // pino flushes it synchronously at exit.
  if (options.stdout) streams.push({ stream: pino.destination({ fd: 1, sync: false }), level: options.level as pino.Level });
  const logger = pino({ level: options.level, base: { app: 'dicom-edge' }, timestamp: pino.stdTimeFunctions.isoTime }, pino.multistream(streams));
  return {
    logger,
    close: () =>
      new Promise<void>((resolve) => {
        file.once('close', () => resolve());
        file.end();
      }),
  };
}
