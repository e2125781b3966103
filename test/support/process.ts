import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join, resolve as resolvePath } from 'node:path';

// Debian installs daemons such as Orthanc in sbin, which a non-root PATH often lacks.
const EXTRA_SEARCH_DIRS = ['/usr/sbin', '/usr/local/sbin', '/sbin'];

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of a test peer binary; throws (never skips) when it is not installed. */
export function requireTool(binary: string, debPackage: string): string {
  if (binary.includes('/')) {
    if (isExecutable(binary)) return isAbsolute(binary) ? binary : resolvePath(binary);
    throw new Error(`missing test peer: '${binary}' is not an executable file — install the Debian package '${debPackage}' (apt-get install -y ${debPackage})`);
  }
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_SEARCH_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error(
    `missing test peer: '${binary}' not found on PATH — install the Debian package '${debPackage}' (apt-get install -y ${debPackage})`,
  );
}

/** Throws the same kind of error as requireTool for a non-executable file (plugins, data files). */
export function requireFile(path: string, debPackage: string): string {
  try {
    accessSync(path, constants.R_OK);
    return path;
  } catch {
    throw new Error(
      `missing test peer: '${path}' does not exist — install the Debian package '${debPackage}' (apt-get install -y ${debPackage})`,
    );
  }
}

export interface RunOptions {
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. Resolves with any exit code; rejects only on spawn failure or timeout. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    // Own process group, so a timeout also kills grandchildren that would keep the pipes open.
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let settled = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      settled = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
      reject(new Error(`${cmd} ${args.join(' ')} timed out after ${timeoutMs} ms and was killed; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`could not run ${cmd}: ${err.message}`));
      settled = true;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (!settled) resolve({ code, stdout, stderr });
      settled = true;
    });
    child.stdin.on('error', () => {}); // a command that exits without reading stdin is not an error
    child.stdin.end(opts.input);
  });
}

/** Like run, but rejects unless the command exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const result = await run(cmd, args, opts);
  if (result.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited with code ${result.code}; stderr: ${result.stderr}; stdout: ${result.stdout}`,
    );
  }
  return result;
}
