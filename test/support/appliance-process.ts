// The headless appliance (`cli.ts serve`) as a child process, as an operator runs it: for tests of what
// only a whole process shows (it stays up, it exits, with which code, how fast a signal stops it).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { spawnDaemon, untilReadyOrExit, type Daemon } from './daemon.js';
import { freePort } from './net.js';

const CLI = fileURLToPath(new URL('../../main/core/cli.ts', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/dicom-edge.js', import.meta.url));

export interface ApplianceProcess {
  daemon: Daemon;
  dataDir: string;
  dimsePort: number;
  httpPort: number;
  token: string;
  baseUrl: string;
  /** fetch with the bearer token. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): Promise<string>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** True until the process has exited. */
  running(): boolean;
}

/**
 * Starts `dicom-edge serve` on free loopback ports and waits until it says it is up ("data dir: …").
 * `logFile` (outside any file system a test fills) receives the whole output.
 */
export async function startApplianceProcess(options: {
  dataDir: string;
  logFile: string;
  token?: string;
  /** bin/dicom-edge.js on plain Node, which runs the compiled core when dist/ holds one (`node scripts/build.mjs`). */
  bin?: boolean;
}): Promise<ApplianceProcess> {
  const [dimsePort, httpPort] = [await freePort(), await freePort()];
  const token = options.token ?? `test-token-${Math.random().toString(36).slice(2)}`;
  const daemon = spawnDaemon(process.execPath, [
    ...(options.bin ? [BIN] : ['--import', 'tsx', CLI]), 'serve', '--data-dir', options.dataDir,
    '--dimse-port', String(dimsePort), '--http-port', String(httpPort), '--http-host', '127.0.0.1', '--api-token', token,
  ], { logFile: options.logFile });
  let exitedYet = false;
  const exited = daemon.exited.then((code) => {
    exitedYet = true;
    return code;
  });
  const ready = (async () => {
    const deadline = Date.now() + 60_000;
    while (!/^data dir: /m.test(daemon.logTail())) {
      if (Date.now() > deadline) throw new Error('no "data dir:" line within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  await untilReadyOrExit(daemon, 'dicom-edge serve', ready);
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  return {
    daemon, dataDir: options.dataDir, dimsePort, httpPort, token, baseUrl, exited,
    api: (path, init = {}) => fetch(`${baseUrl}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } }),
    output: () => readFile(options.logFile, 'utf8').catch(() => daemon.logTail()),
    running: () => !exitedYet,
  };
}
