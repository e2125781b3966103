import { mkdir } from 'node:fs/promises';
import { spawnDaemon, untilReadyOrExit } from './daemon.js';
import { freePort, waitForPort } from './net.js';
import { requireTool } from './process.js';

export interface StorescpOptions {
  /** Received instances are written here (DCMTK default names, e.g. CT.<SOPInstanceUID>). */
  dir: string;
  aet: string;
  port?: number;
}

export interface StorescpPeer {
  port: number;
  aet: string;
  dir: string;
  /** Recent storescp output, for assertion messages. */
  log(): string;
  stop(): Promise<void>;
}

/** Starts DCMTK storescp on a loopback-reachable port, accepting every transfer syntax. */
export async function startStorescp(opts: StorescpOptions): Promise<StorescpPeer> {
  const exe = requireTool('storescp', 'dcmtk');
  await mkdir(opts.dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const args = [
    '-od', opts.dir,
    '+xa',
    '-aet', opts.aet,
    '-dhl',
    '+B', // keep the data set bytes exactly as received, so tests can compare them with what was sent
    String(port),
  ];
  const daemon = spawnDaemon(exe, args);
  await untilReadyOrExit(daemon, 'storescp', waitForPort(port, '127.0.0.1', 10_000));
  return { port, aet: opts.aet, dir: opts.dir, log: () => daemon.logTail(), stop: () => daemon.stop() };
}
