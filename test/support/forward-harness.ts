// In-process store-and-forward for tests: an archive plus the forward service with the given destinations.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import pino, { type Logger } from 'pino';
import { routeFor } from '../../main/core/appliance.js';
import { ForwardService, type ForwardServiceOptions } from '../../main/core/forward/service.js';
import { settingsSchema, type Settings } from '../../main/core/contract/settings.js';
import { Archive } from '../../main/core/store/archive.js';

export interface Forwarding {
  dataDir: string;
  archive: Archive;
  service: ForwardService;
  settings: Settings;
  logger: Logger;
  ingest(buffers: readonly Buffer[], callingAe?: string): Promise<void>;
  /** Applies changed settings (destinations, network) as PUT /api/settings would. */
  reconfigure(changes: { destinations?: unknown[]; network?: unknown }): Promise<void>;
  close(): Promise<void>;
}

export async function startForwarding(options: {
  destinations: unknown[];
  /** `network` settings (proxy, caFile). */
  network?: unknown;
  msal?: ForwardServiceOptions['msal'];
  logLevel?: string;
}): Promise<Forwarding> {
  const dataDir = await mkdtemp(join(tmpdir(), 'fwd-'));
  const settings = settingsSchema.parse({ destinations: options.destinations, network: options.network });
  const logger = pino({ level: options.logLevel ?? process.env.FORWARD_TEST_LOG ?? 'silent' });
  const { archive } = await Archive.open({ dataDir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger, route: routeFor(settings) });
  const service = new ForwardService({ archive, settings, dataDir, logger, route: routeFor(settings), msal: options.msal });
  await service.start();
  let closed = false;
  return {
    dataDir, archive, service, settings, logger,
    async ingest(buffers, callingAe = 'MODALITY') {
      for (const buffer of buffers) await archive.ingest(Readable.from([buffer]), { callingAe, peer: 'test' });
    },
    async reconfigure(changes) {
      const next = settingsSchema.parse({ destinations: changes.destinations ?? settings.destinations, network: changes.network ?? settings.network });
      await service.applySettings(next, routeFor(next));
    },
    async close() {
      if (closed) return;
      closed = true;
      await service.stop();
      await archive.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Polls `check` until it returns a truthy value; fails with `describe()` after timeoutMs. */
export async function waitFor<T>(check: () => T | Promise<T>, describe: () => string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(25);
  }
}
