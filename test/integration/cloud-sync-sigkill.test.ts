// SIGKILL of the appliance (a child process running `cli.ts serve`) while it follows the archive's change
// feed (the Azure DICOM double), again and again. After every kill the index holds exactly the feed applied up
// to the saved cursor (a batch and its cursor commit together); across all runs no entry is applied twice
// (the applied ranges never overlap) and, in the end, none is skipped.
//
// Each run may read only a few pages of the feed before the double holds the next one, so a run cannot reach
// the end of the feed however fast the appliance is next to the test: every kill lands mid-follow (applying a
// batch, or waiting for the next page), and every run has entries left to apply.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { waitFor } from '../support/forward-harness.js';
import { freePort } from '../support/peers.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';

const CLI = fileURLToPath(new URL('../../main/core/cli.ts', import.meta.url));
const KILLS = 8;
/** Most pages one run may read; KILLS runs of it must stay short of the whole feed. */
const MAX_PAGES_PER_RUN = 15;
const BATCH_SIZE = 2;

let dataDir = '';
let azure: AzureDicomDouble;
let child: ChildProcess | undefined;
/** Every `change-feed-applied` line of every run: the sequences each committed batch covered. */
const appliedRanges: Array<[number, number]> = [];

async function spawnAppliance(): Promise<{ process: ChildProcess; exited: Promise<void>; output: () => string }> {
  const [dimsePort, httpPort] = [await freePort(), await freePort()];
  const proc = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--data-dir', dataDir, '--dimse-port', String(dimsePort), '--http-port', String(httpPort)],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let pending = '';
  proc.stdout!.on('data', (d) => {
    output = (output + d).slice(-8000);
    pending += String(d);
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('change-feed-applied')) continue;
      const entry = JSON.parse(line) as { firstSequence: number; lastSequence: number };
      appliedRanges.push([entry.firstSequence, entry.lastSequence]);
    }
  });
  proc.stderr!.on('data', (d) => (output = (output + d).slice(-8000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  child = proc;
  return { process: proc, exited, output: () => output };
}

/** The saved cursor's last sequence and the instance rows, read from the index while no appliance runs (or read-only). */
function indexState(): { lastSequence: number; instances: Set<string> } | undefined {
  const file = join(dataDir, 'index.sqlite');
  if (!existsSync(file)) return undefined;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    if (!db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'change_feed_cursors'").get()) return undefined;
    const row = db.prepare("SELECT cursor FROM change_feed_cursors WHERE destination = 'azure'").get() as { cursor: string } | undefined;
    if (!row) return undefined;
    const instances = new Set((db.prepare('SELECT sop_instance_uid AS uid FROM instances').all() as Array<{ uid: string }>).map((r) => r.uid));
    return { lastSequence: (JSON.parse(row.cursor) as { lastSequence: number }).lastSequence, instances };
  } finally {
    db.close();
  }
}

/** What the index must hold once the feed is applied up to `sequence`: instances whose last change then was not a delete. */
function expectedAt(sequence: number): Set<string> {
  const last = new Map<string, string>();
  for (const change of azure.changes()) if (change.sequence <= sequence) last.set(change.sopUid, change.action);
  return new Set([...last].filter(([, action]) => action !== 'delete').map(([uid]) => uid));
}

before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'feed-kill-'));
  azure = await AzureDicomDouble.start();
  await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
    log: { level: 'info' },
    destinations: [{ name: 'azure', baseUrl: azure.baseUrl, archive: true, requestTimeoutMs: 10_000 }],
    cloud: { changeFeed: { enabled: true, pollIntervalMs: 1000, batchSize: BATCH_SIZE } },
  }));
});

after(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await azure?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

test(`the change-feed cursor survives ${KILLS} SIGKILLs mid-follow: no entry applied twice, none skipped`, { timeout: 300_000 }, async () => {
  // The first start begins at the end of the (empty) feed; everything after that is followed.
  const first = await spawnAppliance();
  await waitFor(() => indexState() !== undefined, () => `no cursor saved; output:\n${first.output()}`, 60_000);
  first.process.kill('SIGKILL');
  await first.exited;

  // A feed long enough that each short run only gets part of the way: creates, updates and deletes.
  const studies = Array.from({ length: 10 }, () => ({ studyUid: newUid(), seriesUid: newUid() }));
  const created: Array<{ studyUid: string; seriesUid: string; sopInstanceUid: string }> = [];
  for (let n = 0; n < 240; n++) {
    const ids = { ...studies[n % studies.length]!, sopInstanceUid: newUid() };
    azure.seedInstance(makeInstance({ ...ids, patientId: `KILL-${n % studies.length}`, rows: 8, columns: 8 }));
    created.push(ids);
  }
  for (const ids of created.filter((_, n) => n % 5 === 0)) {
    azure.seedInstance(makeInstance({ ...ids, patientName: 'Updated^Upstream', rows: 8, columns: 8 }));
  }
  for (const ids of created.filter((_, n) => n % 7 === 0)) {
    const res = await fetch(`${azure.baseUrl}/studies/${ids.studyUid}/series/${ids.seriesUid}/instances/${ids.sopInstanceUid}`, { method: 'DELETE' });
    assert.equal(res.status, 204);
  }
  const total = azure.changes().length;
  assert.ok(KILLS * MAX_PAGES_PER_RUN * BATCH_SIZE < total, `the feed (${total} entries) outlasts ${KILLS} runs`);

  let seed = 1234;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let killedMidFollow = 0;
  for (let round = 0; round < KILLS; round++) {
    const before = indexState()!.lastSequence;
    let release = () => {};
    const pages = 1 + Math.floor(random() * MAX_PAGES_PER_RUN);
    await azure.setFault({ kind: 'hold-changefeed', afterRequests: pages, until: new Promise<void>((resolve) => (release = resolve)) });
    const app = await spawnAppliance();
    const progressed = await Promise.race([
      waitFor(() => indexState()!.lastSequence > before, () => `round ${round}: the cursor did not move; output:\n${app.output()}`, 60_000).then(() => true),
      app.exited.then(() => false),
    ]);
    assert.ok(progressed, `round ${round}: the appliance exited:\n${app.output()}`);
    await sleep(Math.floor(random() * 150));
    app.process.kill('SIGKILL');
    await app.exited;
    release(); // the held page goes to a dead connection
    const state = indexState()!;
    assert.ok(state.lastSequence <= before + pages * BATCH_SIZE, `round ${round}: at most ${pages} pages applied (cursor ${before} → ${state.lastSequence})`);
    if (state.lastSequence < total) killedMidFollow++;
    assert.deepEqual([...state.instances].sort(), [...expectedAt(state.lastSequence)].sort(),
      `round ${round}: the index is the feed applied up to the cursor (${state.lastSequence})`);
  }
  assert.equal(killedMidFollow, KILLS, 'every kill landed mid-follow');

  await azure.clearFault();
  const last = await spawnAppliance();
  await waitFor(() => indexState()!.lastSequence === total, () => `not caught up: at ${indexState()?.lastSequence} of ${total}; output:\n${last.output()}`, 120_000);
  last.process.kill('SIGTERM');
  await last.exited;

  const state = indexState()!;
  assert.deepEqual([...state.instances].sort(), [...expectedAt(total)].sort(), 'every entry applied in the end');
  const sorted = [...appliedRanges].sort((a, b) => a[0] - b[0]);
  for (let n = 1; n < sorted.length; n++) {
    assert.ok(sorted[n]![0] > sorted[n - 1]![1], `entries ${sorted[n]![0]}..${sorted[n]![1]} applied again after ${sorted[n - 1]![0]}..${sorted[n - 1]![1]}`);
  }
});
