import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/net.js';

const BIN = fileURLToPath(new URL('../../bin/dicom-edge.js', import.meta.url));

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Starts `dicom-edge serve`, waits until it has printed `readyPattern`, runs `whileRunning`, then sends SIGTERM. */
function serveThenTerminate(args: string[], env: NodeJS.ProcessEnv, readyPattern: RegExp, whileRunning?: () => Promise<void>): Promise<Finished & { failure?: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let signalled = false;
    let failure: unknown;
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!signalled && readyPattern.test(stdout)) {
        signalled = true;
        void (whileRunning?.() ?? Promise.resolve()).catch((error: unknown) => (failure = error)).finally(() => child.kill('SIGTERM'));
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, failure });
    });
  });
}

function runToExit(args: string[], env: NodeJS.ProcessEnv): Promise<Finished> {
  return runBin(['serve', ...args], env);
}

function runBin(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

describe('the command line', () => {
  test('--help prints the usage to stdout and exits 0', { timeout: 60_000 }, async () => {
    for (const args of [['--help'], ['-h'], ['serve', '--help']]) {
      const result = await runBin(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stdout, /^usage: dicom-edge/m);
      assert.match(result.stdout, /--data-dir DIR/);
      assert.equal(result.stderr, '');
    }
  });

  test('--version prints the package version to stdout and exits 0', { timeout: 60_000 }, async () => {
    const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const args of [['--version'], ['-v']]) {
      const result = await runBin(args);
      assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
      assert.equal(result.stdout, `dicom-edge ${version}\n`);
      assert.equal(result.stderr, '');
    }
  });

  test('an unknown flag prints its name and the usage to stderr and exits 2', { timeout: 60_000 }, async () => {
    const result = await runBin(['serve', '--no-such-flag'], { DICOM_EDGE_DATA_DIR: join(root, 'unknown-flag') });
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /--no-such-flag/);
    assert.match(result.stderr, /^usage: dicom-edge/m);
    assert.ok(!existsSync(join(root, 'unknown-flag')), 'nothing was created');
  });

  test('an unknown command is refused with the usage and exit 2', { timeout: 60_000 }, async () => {
    const result = await runBin(['frobnicate']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown command "frobnicate"/);
    assert.match(result.stderr, /^usage: dicom-edge/m);
  });
});

describe('the API token without putting it on the command line', () => {
  const token = 'token-that-ps-must-not-show-0123456789';

  async function serveWithToken(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
    const port = await freePort();
    const dataDir = join(root, name);
    const result = await serveThenTerminate(['--data-dir', dataDir, '--http-port', String(port), '--dimse-port', String(await freePort()), ...args], env, /data dir: /, async () => {
      const base = `http://127.0.0.1:${port}`;
      assert.equal((await fetch(`${base}/api/health`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
      assert.equal((await fetch(`${base}/api/health`, { headers: { authorization: 'Bearer some-other-token' } })).status, 401);
    });
    assert.equal(result.failure, undefined, String(result.failure));
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /session token \(generated\)/);
    assert.ok(!(await readFile(join(dataDir, 'settings.json'), 'utf8')).includes(token), 'the token stays out of settings.json');
  }

  test('from $DICOM_EDGE_API_TOKEN', { timeout: 90_000 }, async () => {
    await serveWithToken('token-env', [], { DICOM_EDGE_API_TOKEN: token });
  });

  test('from --api-token-file (first line, trailing newline ignored)', { timeout: 90_000 }, async () => {
    const file = join(root, 'api-token');
    await writeFile(file, `${token}\n`, { mode: 0o600 });
    await serveWithToken('token-file', ['--api-token-file', file], { DICOM_EDGE_API_TOKEN: '' });
  });

  test('an unreadable or empty token file, or both token flags, is a usage error', { timeout: 60_000 }, async () => {
    const missing = await runToExit(['--data-dir', join(root, 'token-missing'), '--api-token-file', join(root, 'no-such-file')], {});
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--api-token-file .*no-such-file: cannot be read \(ENOENT\)/);
    const empty = join(root, 'empty-token');
    await writeFile(empty, '\n');
    assert.match((await runToExit(['--data-dir', join(root, 'token-empty'), '--api-token-file', empty], {})).stderr, /the file is empty/);
    const both = await runToExit(['--data-dir', join(root, 'token-both'), '--api-token', 'x', '--api-token-file', empty], {});
    assert.equal(both.code, 2);
    assert.match(both.stderr, /not both/);
  });
});
