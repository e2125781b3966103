// SIGTERM as a supervisor (systemd, a container runtime, a shell script) sends it: to the one process it
// started, for each documented way to run the headless appliance. That process must exit 0, and nothing it
// started may be left running or holding the appliance's ports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/net.js';
import { describePids, descendants, portIsFree, survivors } from '../support/process-tree.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const NODE_DIR = dirname(process.execPath);
// The npm that belongs to the Node running the tests, so its scripts run on that Node too.
const NPM = existsSync(join(NODE_DIR, 'npm')) ? join(NODE_DIR, 'npm') : 'npm';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'dicom-edge-sigterm-'));
});
after(async () => rm(root, { recursive: true, force: true }));

async function terminateAsASupervisorWould(name: string, command: string, args: (flags: string[]) => string[]): Promise<void> {
  const [dimsePort, httpPort] = [await freePort(), await freePort()];
  const flags = ['--data-dir', join(root, name), '--dimse-port', String(dimsePort), '--http-port', String(httpPort)];
  // Its own process group, so the cleanup below can reach whatever it leaves behind.
  const child = spawn(command, args(flags), {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${NODE_DIR}${delimiter}${process.env.PATH ?? ''}`, ELECTRON_SKIP_BINARY_DOWNLOAD: '1' },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    const deadline = Date.now() + 170_000;
    while (!/^data dir: /m.test(output)) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `${name} did not come up; output:\n${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const below = descendants(child.pid!);
    assert.equal(await portIsFree(dimsePort), false, 'the DIMSE port is held while running');

    child.kill('SIGTERM');
    const { code, signal } = await exited;
    assert.equal(code, 0, `${name}: exit code 0 (signal ${signal}); output:\n${output}`);
    const left = await survivors(below);
    assert.deepEqual(left, [], `${name}: processes left running after SIGTERM:\n${describePids(left)}`);
    assert.equal(await portIsFree(dimsePort), true, `${name}: the DIMSE port ${dimsePort} is free`);
    assert.equal(await portIsFree(httpPort, '127.0.0.1'), true, `${name}: the HTTP port ${httpPort} is free`);
    assert.match(output, /"event":"stopped"/, `${name}: the appliance stopped in order`);
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* the group is gone, as it should be */
    }
  }
}

test('npm run serve: SIGTERM to npm stops the appliance, exit 0, nothing left behind', { timeout: 180_000 }, async () => {
  await terminateAsASupervisorWould('npm-run-serve', NPM, (flags) => ['run', 'serve', '--', ...flags]);
});

test('bin/dicom-edge.js serve: SIGTERM stops it, exit 0, nothing left behind', { timeout: 180_000 }, async () => {
  await terminateAsASupervisorWould('bin', process.execPath, (flags) => ['bin/dicom-edge.js', 'serve', ...flags]);
});

test('npm start without Electron: SIGTERM to npm stops the headless appliance, exit 0, nothing left behind', { timeout: 180_000 }, async () => {
  await terminateAsASupervisorWould('npm-start', NPM, (flags) => ['start', '--', ...flags]);
});
