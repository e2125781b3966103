import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/peers.js';
import { installedElectronBinary } from '../../scripts/electron-binary.mjs';
import { APPLIANCE_NODE_FLAGS } from '../../scripts/node-flags.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('npm start says in one line that Electron is missing and runs the headless appliance', { timeout: 180_000 }, async (t) => {
  if (installedElectronBinary()) {
    // On a desktop with Electron the window opens instead; this test is about machines without it.
    assert.fail('this test expects a machine where the Electron binary was not downloaded (ELECTRON_SKIP_BINARY_DOWNLOAD=1)');
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-start-'));
  t.after(() => rm(dataDir, { recursive: true, force: true }));
  const [httpPort, dimsePort] = [await freePort(), await freePort()];
  // The appliance's command line, read while it runs: start.mjs's one child.
  let applianceArgv: string[] = [];
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['scripts/start.mjs', '--http-port', String(httpPort), '--dimse-port', String(dimsePort)], {
      cwd: ROOT,
      env: { ...process.env, DICOM_EDGE_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let stopped = false;
    const killer = setTimeout(() => child.kill('SIGKILL'), 170_000);
    child.stdout.on('data', (d) => {
      stdout += d;
      if (!stopped && /data dir: /.test(stdout)) {
        stopped = true;
        const [pid] = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/);
        applianceArgv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        child.kill('SIGTERM');
      }
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
  assert.equal(result.code, 0, result.stderr);
  const notices = result.stdout.split('\n').filter((line) => /Electron/.test(line));
  assert.equal(notices.length, 1, 'exactly one line about Electron');
  assert.match(notices[0]!, /not installed.*headless/);
  assert.match(result.stdout, new RegExp(`DIMSE listening on .*:${dimsePort}`));
  assert.match(result.stdout, new RegExp(`http://127\\.0\\.0\\.1:${httpPort}/`));
  // As the server package runs it: Node with the appliance's flags (a bounded young generation), then the entry point.
  assert.ok(APPLIANCE_NODE_FLAGS.includes('--max-semi-space-size=4'));
  assert.deepEqual(applianceArgv.slice(1, 1 + APPLIANCE_NODE_FLAGS.length + 2), [...APPLIANCE_NODE_FLAGS, 'bin/dicom-edge.js', 'serve'], applianceArgv.join(' '));
});
