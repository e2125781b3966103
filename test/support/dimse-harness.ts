import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { DimseService } from '../../main/core/dimse/dimse-service.js';
import { settingsSchema, type Settings } from '../../main/core/contract/settings.js';
import { Archive } from '../../main/core/store/archive.js';
import { freePort } from './net.js';

export interface DimseHarness {
  dir: string;
  port: number;
  aeTitle: string;
  archive: Archive;
  service: DimseService;
  settings: Settings;
  /** Log lines as JSON objects, for assertions on what was logged. */
  logs: Record<string, unknown>[];
  /** Files under the archive (instances and temp files), relative paths. */
  archiveFiles(): Promise<string[]>;
  stop(): Promise<void>;
}

/** A DimseService over a fresh archive on a free loopback port; `settings` is merged over the defaults. */
export async function startDimse(settings: Record<string, unknown> = {}, dimse: Record<string, unknown> = {}): Promise<DimseHarness> {
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-dimse-'));
  const port = await freePort();
  const logs: Record<string, unknown>[] = [];
  const logger: Logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const parsed = settingsSchema.parse({ aeTitle: 'EDGE', ...settings, dimse: { host: '127.0.0.1', port, ...dimse } });
  const { archive } = await Archive.open({
    dataDir: dir,
    limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
    logger,
  });
  const service = new DimseService({ archive, logger, settings: () => parsed });
  await service.start();
  return {
    dir, port, aeTitle: parsed.aeTitle, archive, service, settings: parsed, logs,
    async archiveFiles() {
      const out: string[] = [];
      for (const entry of await readdir(archive.paths.root, { withFileTypes: true, recursive: true })) {
        if (entry.isFile()) out.push(join(entry.parentPath, entry.name).slice(archive.paths.root.length + 1));
      }
      return out;
    },
    async stop() {
      await service.stop();
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
