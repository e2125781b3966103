// SIGKILL of the appliance (a child process running `cli.ts serve`) between a Storage Commitment request and
// its report: after the restart the transaction is still open, is decided, and is reported exactly once.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';
import { startApplianceProcess, type ApplianceProcess } from '../support/appliance-process.js';
import { askForCommitment, startCommitmentScp, type CommitmentScp } from '../support/commitment-scu.js';
import { SOP_CLASS_UIDS } from '../support/instance.js';
import { freePort, requireTool, runOk } from '../support/peers.js';
import { makeStudy, writeInstances } from '../support/study.js';
import { newUid } from '../support/uid.js';

let work = '';
let app: ApplianceProcess | undefined;
let scp: CommitmentScp | undefined;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'commit-kill-'));
});

after(async () => {
  scp?.close();
  if (app?.running()) app.daemon.process.kill('SIGKILL');
  await app?.exited;
  await rm(work, { recursive: true, force: true });
});

test('a commitment asked before a SIGKILL is reported once after the restart', { timeout: 180_000 }, async () => {
  const dataDir = join(work, 'data');
  await mkdir(dataDir, { recursive: true });
  scp = await startCommitmentScp('MODALITY', await freePort());
  await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
    peers: [{ aeTitle: 'MODALITY', host: '127.0.0.1', port: scp.port }],
    storageCommitment: { retryBaseMs: 100, retryCapMs: 500 },
  }));
  const study = makeStudy({ series: 1, instancesPerSeries: 3, rows: 8, columns: 8 });
  const transactionUid = newUid();

  app = await startApplianceProcess({ dataDir, logFile: join(work, 'first.log') });
  // Asked while none of the instances is here: the transaction is open when the appliance dies.
  const { actionStatus, report } = await askForCommitment({
    port: app.dimsePort, calledAe: 'DICOMEDGE', callingAe: 'MODALITY', transactionUid,
    items: study.map((i) => ({ sopClassUid: SOP_CLASS_UIDS.ctImage, sopInstanceUid: i.sopInstanceUid })), waitForReportMs: 0,
  });
  assert.equal(actionStatus, 0);
  assert.equal(report, undefined);
  app.daemon.process.kill('SIGKILL');
  await app.exited;
  assert.equal(scp.reports.length, 0);

  app = await startApplianceProcess({ dataDir, logFile: join(work, 'second.log') });
  await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(app.dimsePort),
    ...(await writeInstances(join(work, 'study'), study))], { timeoutMs: 60_000 });
  const received = await scp.nextReport(60_000);
  assert.equal(received.transactionUid, transactionUid);
  assert.equal(received.eventType, 1);
  assert.deepEqual(received.committed.map((i) => i.sopInstanceUid).sort(), study.map((i) => i.sopInstanceUid).sort());

  // Stopped in order, the index shows the transaction closed, and the modality got one report for it.
  await app.daemon.stop();
  const db = new Database(join(dataDir, 'index.sqlite'), { readonly: true });
  try {
    const row = db.prepare('SELECT state, event_type AS eventType FROM commitment_transactions WHERE transaction_uid = ?').get(transactionUid);
    assert.deepEqual(row, { state: 'reported', eventType: 1 });
  } finally {
    db.close();
  }
  assert.equal(scp.reports.filter((r) => r.transactionUid === transactionUid).length, 1);
});
