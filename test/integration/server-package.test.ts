// The .deb of `npm run dist:server`, as an IT person gets it: installed with dpkg, the unit's ExecStart line
// run as the service user the package made (as systemd would, with $NOTIFY_SOCKET and the state directory),
// answering C-ECHO and /api/health, stopped with SIGTERM, and purged without a trace. Needs root (dpkg -i).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { spawnDaemon, type Daemon } from '../support/daemon.js';
import { freePort } from '../support/net.js';
import { requireTool, run, runOk } from '../support/process.js';
import { portIsFree } from '../support/process-tree.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const UNIT = '/usr/lib/systemd/system/dicom-edge.service';
const STATE_DIR = '/var/lib/dicom-edge';

/** `Key=value` lines of a unit file's [Service] section, in order (a key may repeat). */
function serviceSection(unit: string): Array<[string, string]> {
  const section = unit.split(/^\[/m).find((part) => part.startsWith('Service]')) ?? '';
  return section.split('\n').filter((line) => /^[A-Za-z]+=/.test(line)).map((line) => {
    const at = line.indexOf('=');
    return [line.slice(0, at), line.slice(at + 1)] as [string, string];
  });
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

let work: string;
let deb: string;
before(async () => {
  assert.equal(process.getuid?.(), 0, 'this test installs a .deb with dpkg -i and must run as root (as CI does)');
  for (const [tool, pkg] of [['dpkg-deb', 'dpkg'], ['setpriv', 'util-linux'], ['systemd-notify', 'systemd'], ['systemd-analyze', 'systemd'], ['python3', 'python3'], ['echoscu', 'dcmtk']]) {
    requireTool(tool!, pkg!);
  }
  const installed = await run('dpkg-query', ['-W', '-f=${Status}', 'dicom-edge']);
  assert.ok(!/installed/.test(installed.stdout) && !existsSync(STATE_DIR),
    `dicom-edge is already installed here or ${STATE_DIR} exists: this test would remove it, so it refuses to run`);
  work = await mkdtemp(join(tmpdir(), 'dicom-edge-deb-'));
  await runOk(process.execPath, ['scripts/dist-server.mjs', '--compression', 'gzip'], { cwd: ROOT, timeoutMs: 540_000 });
  const version = (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  deb = join(ROOT, 'out', `dicom-edge_${version}_amd64.deb`);
});
after(async () => {
  await run('dpkg', ['--purge', 'dicom-edge']);
  if (work) await rm(work, { recursive: true, force: true });
});

test('the .deb installs, its unit runs as the service user, answers, stops on SIGTERM and purges cleanly', { timeout: 600_000 }, async () => {
  // What is inside: production dependencies only, the runtime it brings, no sources.
  const listing = (await runOk('dpkg-deb', ['--contents', deb])).stdout;
  assert.match(listing, /\.\/usr\/bin\/dicom-edge$/m);
  assert.match(listing, /\.\/usr\/lib\/dicom-edge\/node\/bin\/node$/m);
  assert.match(listing, /\.\/usr\/lib\/dicom-edge\/dist\/main\/core\/cli\.js$/m);
  assert.match(listing, /\.\/usr\/lib\/dicom-edge\/node_modules\/better-sqlite3\//m);
  const paths = listing.split('\n').map((line) => line.split(' ').pop()!);
  for (const devOnly of ['electron', 'tsx', 'typescript', 'vite', 'esbuild']) {
    assert.ok(!paths.some((path) => path.includes(`/node_modules/${devOnly}/`)), `${devOnly} is a dev dependency`);
  }
  const sources = paths.filter((path) => /^\.\/usr\/lib\/dicom-edge\/(?!node_modules\/).*\.ts$/.test(path));
  assert.deepEqual(sources, [], 'no TypeScript sources of ours');

  await runOk('dpkg', ['-i', deb], { timeoutMs: 300_000 });
  if (existsSync('/run/systemd/system')) {
    // Where systemd runs, the package started the service on its default ports: this test runs it itself.
    await runOk('systemctl', ['stop', 'dicom-edge.service']);
    await rm(STATE_DIR, { recursive: true, force: true });
  }
  assert.equal((await runOk('/usr/bin/dicom-edge', ['--version'])).stdout.trim(), `dicom-edge ${JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version}`);
  assert.equal((await runOk('/usr/lib/dicom-edge/node/bin/node', ['--version'])).stdout.trim(), process.version, 'it brings the Node it was built with');
  const user = (await runOk('getent', ['passwd', 'dicom-edge'])).stdout.split(':');
  assert.ok(Number(user[2]) < 1000, `a system user (uid ${user[2]})`);
  assert.equal(user[6]!.trim(), '/usr/sbin/nologin');

  const unitText = await readFile(UNIT, 'utf8');
  const verify = await run('systemd-analyze', ['verify', UNIT]);
  assert.equal(verify.code, 0, `systemd-analyze verify: ${verify.stderr}`);
  assert.equal(verify.stderr.trim(), '', 'no warnings from systemd-analyze verify');
  const service = serviceSection(unitText);
  const value = (key: string) => service.filter(([k]) => k === key).map(([, v]) => v);
  assert.deepEqual(value('Type'), ['notify']);
  assert.deepEqual(value('User'), ['dicom-edge']);
  assert.deepEqual(value('StateDirectory'), ['dicom-edge']);
  assert.deepEqual(value('ProtectSystem'), ['strict']);
  assert.deepEqual(value('NoNewPrivileges'), ['yes']);
  assert.deepEqual(value('PrivateTmp'), ['yes']);
  assert.deepEqual(value('CapabilityBoundingSet'), ['CAP_NET_BIND_SERVICE']);
  assert.deepEqual(value('AmbientCapabilities'), ['CAP_NET_BIND_SERVICE']);

  // What systemd would do before ExecStart: the state directory for the user alone, and a notify socket.
  await mkdir(STATE_DIR, { mode: 0o700 });
  const [dimsePort, httpPort] = [await freePort(), await freePort()];
  // The admin's port choice, as they would write it before (re)starting the service.
  await writeFile(join(STATE_DIR, 'settings.json'), JSON.stringify({ dimse: { port: dimsePort }, http: { port: httpPort } }));
  await chown(STATE_DIR, Number(user[2]), Number(user[3]));
  await chown(join(STATE_DIR, 'settings.json'), Number(user[2]), Number(user[3]));
  await chmod(work, 0o755);
  const socketPath = join(work, 'notify.sock');
  const notifications = spawnDaemon(requireTool('python3', 'python3'), ['-u', '-c', [
    'import os, socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    `s.bind(${JSON.stringify(socketPath)})`,
    `os.chmod(${JSON.stringify(socketPath)}, 0o666)`,
    'print("listening")',
    'while True: print(s.recv(4096).decode().replace("\\n", " "))',
  ].join('\n')]);
  let appliance: Daemon | undefined;
  try {
    await waitFor('the notify socket', () => /listening/.test(notifications.logTail()));
    const execStart = value('ExecStart')[0]!.replaceAll('%S', '/var/lib').split(' ');
    const token = 'package-test-token-0123456789abcdef';
    appliance = spawnDaemon('env', ['-i', 'PATH=/usr/local/bin:/usr/bin:/bin', `NOTIFY_SOCKET=${socketPath}`, `STATE_DIRECTORY=${STATE_DIR}`,
      `DICOM_EDGE_API_TOKEN=${token}`, 'setpriv', '--reuid=dicom-edge', '--regid=dicom-edge', '--init-groups', '--no-new-privs', '--', ...execStart]);
    await waitFor('READY=1 on the notify socket', () => /READY=1/.test(notifications.logTail()) || appliance!.process.exitCode !== null);
    assert.match(notifications.logTail(), /MAINPID=\d+ READY=1/, `the service said it is ready; its output:\n${appliance.logTail()}`);

    const echo = await run('echoscu', ['-aet', 'PKGTEST', '-aec', 'DICOMEDGE', '127.0.0.1', String(dimsePort)], { timeoutMs: 30_000 });
    assert.equal(echo.code, 0, `C-ECHO: ${echo.stderr}`);
    const health = await fetch(`http://127.0.0.1:${httpPort}/api/health`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(health.status, 200);
    assert.equal((await health.json() as { status: string }).status, 'ok');

    // It runs as the service user and keeps its files to that user; the journal (stdout) is its only log.
    const pid = /MAINPID=(\d+)/.exec(notifications.logTail())![1]!;
    assert.match(await readFile(`/proc/${pid}/status`, 'utf8'), new RegExp(`^Uid:\\s+${user[2]}\\s`, 'm'));
    assert.ok(!existsSync(join(STATE_DIR, 'logs')), 'no log file next to the journal');
    assert.match(appliance.logTail(), /"event":"started"/);

    appliance.process.kill('SIGTERM');
    assert.equal(await appliance.exited, 0, appliance.logTail());
    await waitFor('STOPPING=1 on the notify socket', () => /STOPPING=1/.test(notifications.logTail()), 10_000);
    assert.equal(await portIsFree(dimsePort), true);
    assert.ok(readdirSync(STATE_DIR).includes('index.sqlite'));
  } finally {
    await appliance?.stop();
    await notifications.stop();
  }

  await runOk('dpkg', ['--purge', 'dicom-edge'], { timeoutMs: 120_000 });
  for (const path of ['/usr/bin/dicom-edge', '/usr/lib/dicom-edge', UNIT, STATE_DIR]) assert.ok(!existsSync(path), `${path} is gone`);
  assert.notEqual((await run('getent', ['passwd', 'dicom-edge'])).code, 0, 'the service user is gone');
  assert.notEqual((await run('dpkg-query', ['-W', 'dicom-edge'])).code, 0, 'dpkg knows it no more');
});
