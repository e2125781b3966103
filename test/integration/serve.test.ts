import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/dicom-edge.js', import.meta.url));

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `dicom-edge serve`, waits until it has printed `readyPattern`, then sends SIGTERM. */
function serveThenTerminate(args: string[], env: NodeJS.ProcessEnv, readyPattern: RegExp): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!signalled && readyPattern.test(stdout)) {
        signalled = true;
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function runToExit(args: string[], env: NodeJS.ProcessEnv): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dicom-edge-serve-'));
});
after(async () => rm(root, { recursive: true, force: true }));

test('serve starts on an empty data dir with zero flags and exits 0 on SIGTERM', { timeout: 90_000 }, async () => {
  const dataDir = join(root, 'empty');
  const result = await serveThenTerminate([], { DICOM_EDGE_DATA_DIR: dataDir }, /data dir: /);
  assert.equal(result.code, 0, `exit code 0 (signal ${result.signal}); stdout: ${result.stdout}; stderr: ${result.stderr}`);
  assert.match(result.stdout, /received SIGTERM, stopping/);
  assert.match(result.stdout, /"event":"stopped"/, 'the appliance stopped in order and closed the index');
  assert.ok(existsSync(join(dataDir, 'settings.json')), 'defaults were written');
  assert.ok(existsSync(join(dataDir, 'index.sqlite')), 'the index exists');
  // The rotating log file under the data dir carries the same events.
  const { readdirSync } = await import('node:fs');
  const logs = readdirSync(join(dataDir, 'logs'));
  assert.ok(logs.length > 0);
  const logText = await readFile(join(dataDir, 'logs', logs[0]!), 'utf8');
  assert.match(logText, /"event":"recovery"/);
});

test('an invalid settings file stops the start, names the field, and is left untouched', { timeout: 60_000 }, async () => {
  const dataDir = join(root, 'invalid');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dataDir, { recursive: true });
  const text = '{ "dimse": { "port": "eleven" } }';
  await writeFile(join(dataDir, 'settings.json'), text);
  const result = await runToExit(['--data-dir', dataDir], {});
  assert.equal(result.code, 1);
  assert.match(result.stderr, /field "dimse\.port" has value "eleven"/);
  assert.equal(await readFile(join(dataDir, 'settings.json'), 'utf8'), text);
});

test('a bad flag is refused with a usage message', { timeout: 60_000 }, async () => {
  const result = await runToExit(['--data-dir', join(root, 'flag'), '--dimse-port', '99999'], {});
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--dimse-port must be a port number/);
});
