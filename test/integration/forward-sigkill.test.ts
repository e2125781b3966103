// SIGKILL of the appliance (a child process running `cli.ts serve`) during uploads, again and again:
// in the end every instance is held by the upstream exactly once, byte-identical, and delivered locally.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { waitFor } from '../support/forward-harness.js';
import { freePort } from '../support/peers.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';

const CLI = fileURLToPath(new URL('../../main/core/cli.ts', import.meta.url));
const KILLS = 20;
const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

let dataDir = '';
let azure: AzureDicomDouble;
let child: ChildProcess | undefined;
const instances: GeneratedInstance[] = [];

async function spawnAppliance(): Promise<{ process: ChildProcess; exited: Promise<void>; output: () => string }> {
  const [dimsePort, httpPort] = [await freePort(), await freePort()];
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--data-dir', dataDir, '--dimse-port', String(dimsePort), '--http-port', String(httpPort)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d) => (output = (output + d).slice(-8000)));
  proc.stderr!.on('data', (d) => (output = (output + d).slice(-8000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  child = proc;
  return { process: proc, exited, output: () => output };
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'fwd-kill-'));
  azure = await AzureDicomDouble.start();
  await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
    log: { level: 'warn' },
    destinations: [{ name: 'azure', baseUrl: azure.baseUrl, maxInstancesPerRequest: 5, maxConcurrentRequests: 3, retryBaseMs: 50, retryCapMs: 500, requestTimeoutMs: 10_000 }],
  }));
  // Enough instances that 20 short rounds cannot deliver them all: every round must find work left.
  for (let s = 0; s < 8; s++) instances.push(...makeStudy({ series: 3, instancesPerSeries: 50, rows: 8, columns: 8 }));
  const { archive } = await Archive.open({ dataDir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }), route: () => ['azure'] });
  for (const instance of instances) await archive.ingest(Readable.from([instance.buffer]), { callingAe: 'CT', peer: 'test' });
  await archive.close();
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await azure?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

test(`every instance reaches the upstream exactly once through ${KILLS} SIGKILLs during uploads`, { timeout: 300_000 }, async () => {
  let seed = 4242;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let killedMidUpload = 0;
  for (let round = 0; round < KILLS; round++) {
    // Alternate where the kill lands: before the upstream stored (body read, answer pending) or after.
    await azure.setFault({ kind: 'delay', ms: 150, beforeStore: round % 2 === 0 });
    const seen = azure.storeRequests().length;
    const app = await spawnAppliance();
    const started = await Promise.race([
      waitFor(() => azure.storeRequests().length > seen, () => `round ${round}: no upload started; output:\n${app.output()}`, 60_000).then(() => true),
      app.exited.then(() => false),
    ]);
    assert.ok(started, `round ${round}: the appliance exited before uploading:\n${app.output()}`);
    await sleep(Math.floor(random() * 200));
    if (azure.storeRequests().some((r) => r.status === 'pending')) killedMidUpload++;
    app.process.kill('SIGKILL');
    await app.exited;
  }
  assert.ok(killedMidUpload >= KILLS / 2, `most kills landed with a request in flight (${killedMidUpload} of ${KILLS})`);

  await azure.clearFault();
  const app = await spawnAppliance();
  const db = () => new Database(join(dataDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
  await waitFor(() => {
    const conn = db();
    try {
      return (conn.prepare("SELECT COUNT(*) AS n FROM outbox WHERE state = 'delivered'").get() as { n: number }).n === instances.length;
    } finally {
      conn.close();
    }
  }, () => `not all delivered; upstream holds ${azure.storedInstances().length}; output:\n${app.output()}`, 120_000);
  app.process.kill('SIGTERM');
  await app.exited;

  assert.equal(azure.storedInstances().length, instances.length, 'nothing more, nothing less upstream');
  for (const instance of instances) {
    const stored = azure.storedInstance(instance.sopInstanceUid);
    assert.ok(stored, `upstream holds ${instance.sopInstanceUid}`);
    assert.equal(sha(stored.bytes), sha(instance.buffer), 'identical bytes');
    assert.equal(azure.storeCount(instance.sopInstanceUid), 1, 'stored exactly once; re-sends absorbed by 45070');
  }
});
