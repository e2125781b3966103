// TLS in front of a plain-HTTP test peer (Orthanc, the Entra double) with Debian's stunnel4, so the
// appliance meets a real TLS server whose certificate a test CA signed.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnDaemon, untilReadyOrExit, type Daemon } from './daemon.js';
import { freePort, waitForPort } from './net.js';
import { requireTool } from './process.js';

export interface Stunnel {
  /** The TLS port on 127.0.0.1. */
  port: number;
  stop(): Promise<void>;
}

export async function startStunnel(options: { dir: string; name: string; connectPort: number; certFile: string; keyFile: string }): Promise<Stunnel> {
  const exe = requireTool('stunnel4', 'stunnel4');
  const port = await freePort();
  const configFile = join(options.dir, `stunnel-${options.name}.conf`);
  await writeFile(configFile, [
    'foreground = yes', `pid =`, 'debug = notice',
    `[${options.name}]`, `accept = 127.0.0.1:${port}`, `connect = 127.0.0.1:${options.connectPort}`,
    `cert = ${options.certFile}`, `key = ${options.keyFile}`, '',
  ].join('\n'));
  const daemon: Daemon = spawnDaemon(exe, [configFile], { logFile: join(options.dir, `stunnel-${options.name}.log`), cwd: options.dir });
  await untilReadyOrExit(daemon, 'stunnel4', waitForPort(port));
  return { port, stop: () => daemon.stop() };
}
