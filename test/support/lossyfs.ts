// A file system that loses power on command (test/support/lossyfs.py, FUSE through Debian's
// python3-fusepy): what was not fsynced is gone after `cut()` and `reboot()`. Mounting needs root
// and /dev/fuse; where it cannot run, the tests that need it skip and say so loudly.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './process.js';

const SCRIPT = fileURLToPath(new URL('./lossyfs.py', import.meta.url));
// Debian's python, which has the python3-fusepy module; a python on PATH may be another one.
const PYTHON = '/usr/bin/python3';

export interface LossyFs {
  /** The mount point. */
  dir: string;
  /**
   * Power is lost now: nothing more becomes durable, and every later write fails. Says how much was
   * not yet synced (and so will be gone after `reboot()`).
   */
  cut(): Promise<{ lostBytes: number; lostEntries: number }>;
  /** Unmounts and mounts again: the file system then holds exactly what was durable. */
  reboot(): Promise<void>;
  /** Makes everything durable, as `sync` would. */
  sync(): Promise<void>;
  /** Unmounts for good and removes the state. */
  unmount(): Promise<void>;
  /** What the file system process wrote to stderr, for assertion messages. */
  stderr(): string;
}

/** `ignore`: 'fsyncdir' makes directory fsyncs change nothing (a program that forgot them). */
export async function mountLossyFs(options: { ignore?: 'fsyncdir' } = {}): Promise<LossyFs> {
  const root = await mkdtemp(join(tmpdir(), 'dicom-edge-lossyfs-'));
  const dir = join(root, 'mnt');
  const state = join(root, 'state');
  await mkdir(dir);
  await mkdir(state);
  const child: ChildProcessWithoutNullStreams = spawn(PYTHON, [SCRIPT, state, dir], {
    env: { ...process.env, LOSSYFS_IGNORE: options.ignore ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-8000)));
  const waiting: Array<{ prefix: string; resolve: (line: string) => void; reject: (error: Error) => void }> = [];
  let exited = false;
  let buffer = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    buffer += d;
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      const i = waiting.findIndex((w) => line.startsWith(w.prefix));
      if (i >= 0) waiting.splice(i, 1)[0]!.resolve(line);
    }
  });
  child.on('error', (error) => {
    stderr += `\ncould not run ${PYTHON}: ${error.message}`;
  });
  child.on('exit', (code, signal) => {
    exited = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`lossyfs exited (${code ?? signal}) while waiting for ${w.prefix}: ${stderr}`));
  });
  const next = (prefix: string, timeoutMs = 30_000) => new Promise<string>((resolve, reject) => {
    if (exited) return reject(new Error(`lossyfs has exited: ${stderr}`));
    const timer = setTimeout(() => reject(new Error(`lossyfs: no ${prefix} within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    waiting.push({ prefix, resolve: (line) => (clearTimeout(timer), resolve(line)), reject: (e) => (clearTimeout(timer), reject(e)) });
  });
  const command = (text: string, prefix: string) => {
    const answer = next(prefix);
    child.stdin.write(`${text}\n`);
    return answer;
  };
  const umount = async () => {
    const result = await run('umount', [dir], { timeoutMs: 30_000 });
    if (result.code !== 0) throw new Error(`umount ${dir} failed (exit ${result.code}): ${result.stderr.trim()}`);
  };
  try {
    await next('MOUNTED');
  } catch (error) {
    child.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
    throw error;
  }
  return {
    dir,
    async cut() {
      const [, lostBytes, lostEntries] = (await command('cut', 'CUT')).split(' ');
      return { lostBytes: Number(lostBytes), lostEntries: Number(lostEntries) };
    },
    async reboot() {
      const mounted = next('MOUNTED');
      await umount();
      await mounted;
    },
    async sync() {
      await command('sync', 'SYNCED');
    },
    async unmount() {
      if (!exited) {
        await command('quit', 'BYE');
        const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        await umount().catch(() => run('umount', ['-l', dir], { timeoutMs: 30_000 }));
        await gone;
      }
      await rm(root, { recursive: true, force: true });
    },
    stderr: () => stderr,
  };
}

let probed: Promise<string | undefined> | undefined;

/**
 * Why the power-loss file system cannot run on this machine, or undefined when it can. The reason is
 * also written to stderr, so a skipped power-loss test is never mistaken for a passed one.
 */
export function lossyFsUnavailable(): Promise<string | undefined> {
  probed ??= (async () => {
    try {
      const probe = await mountLossyFs();
      await probe.unmount();
      return undefined;
    } catch (error) {
      const reason = 'SKIPPED: the power-loss test needs FUSE (root, /dev/fuse, the Debian packages fuse3 and python3-fusepy) '
        + `and cannot mount its file system here: ${(error as Error).message}`;
      process.stderr.write(`\n${'!'.repeat(100)}\n!!! ${reason}\n${'!'.repeat(100)}\n\n`);
      return reason;
    }
  })();
  return probed;
}
