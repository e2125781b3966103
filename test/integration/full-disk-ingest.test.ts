// The appliance fills a real small disk (tmpfs) itself: storescu senders and a STOW-RS client keep sending
// while forwarding uploads, until the disk is full and beyond. Every refusal must be out-of-resources
// (0xA700, FailureReason 0xA700); everything acknowledged must be kept, byte-identical, indexed and queued;
// SQLite must not be corrupted by its failed writes; queries and WADO must keep working; ingest must resume
// without a restart when space comes back. Then another writer fills the disk while the appliance runs,
// and the appliance is restarted on the full disk.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { parseMediaType, readMultipartRelated } from '../doubles/multipart-related.js';
import { datasetSha, sha256, storescuAcknowledged, stowAcknowledged } from '../support/acknowledged.js';
import { startApplianceProcess, type ApplianceProcess } from '../support/appliance-process.js';
import { makeStudy, writeInstances, type GeneratedInstance } from '../support/fixtures.js';
import { requireTool, runOk } from '../support/process.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../support/tmpfs.js';

const OUT_OF_RESOURCES = 0xa700;
const SENDERS = 3;
const skip = await tmpfsUnavailable();

describe('the appliance fills a real disk with its own ingest while forwarding runs', { skip, timeout: 300_000 }, () => {
  let disk: Tmpfs;
  let work: string;
  let dataDir: string;
  let ballast: string;
  let azure: AzureDicomDouble;
  let app: ApplianceProcess | undefined;
  const acknowledged = new Map<string, string>();
  const sent: GeneratedInstance[] = [];
  let round = 0;

  const start = async () => {
    app = await startApplianceProcess({ dataDir, logFile: join(work, `app-${round++}.log`) });
    return app;
  };
  const stop = async () => {
    app!.daemon.process.kill('SIGTERM');
    const code = await app!.exited;
    app = undefined;
    return code;
  };
  /** New instances written outside the small disk, ready to send. */
  const fresh = async (count: number, name: string) => {
    const instances = makeStudy({ series: 1, instancesPerSeries: count, rows: 128, columns: 128 });
    sent.push(...instances);
    return { instances, paths: await writeInstances(join(work, name), instances) };
  };
  const echo = () => runOk(requireTool('echoscu', 'dcmtk'), ['-aec', 'DICOMEDGE', '127.0.0.1', String(app!.dimsePort)], { timeoutMs: 30_000 });

  /** Every acknowledged instance: indexed, its file the data set sent, queued or delivered; and the index whole. */
  const checkKept = async () => {
    const db = new Database(join(dataDir, 'index.sqlite'), { readonly: true, fileMustExist: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the index passes its integrity check');
      for (const [uid, digest] of acknowledged) {
        const row = db.prepare('SELECT path, sha256, file_missing FROM instances WHERE sop_instance_uid = ?').get(uid) as
          { path: string; sha256: string; file_missing: number } | undefined;
        assert.ok(row, `acknowledged ${uid} is indexed`);
        assert.equal(row.file_missing, 0);
        const bytes = await readFile(join(dataDir, 'archive', row.path));
        assert.equal(sha256(bytes), row.sha256, `${uid}: the index describes its file`);
        assert.equal(datasetSha(bytes), digest, `${uid}: the file holds the data set sent`);
        const outbox = db.prepare("SELECT state FROM outbox WHERE sop_instance_uid = ? AND destination = 'azure'").all(uid) as Array<{ state: string }>;
        assert.equal(outbox.length, 1, `${uid} is queued`);
      }
      const delivered = db.prepare("SELECT o.sop_instance_uid AS uid, i.sha256 FROM outbox o JOIN instances i USING (sop_instance_uid) WHERE o.state = 'delivered'").all() as
        Array<{ uid: string; sha256: string }>;
      for (const { uid, sha256: digest } of delivered) {
        assert.equal(sha256(azure.storedInstance(uid)?.bytes ?? Buffer.alloc(0)), digest, `${uid} is delivered as stored`);
      }
      return delivered.length;
    } finally {
      db.close();
    }
  };

  before(async () => {
    requireTool('storescu', 'dcmtk');
    requireTool('echoscu', 'dcmtk');
    azure = await AzureDicomDouble.start();
    // Slow uploads: forwarding is still under way when the disk fills.
    await azure.setFault({ kind: 'delay', ms: 150, beforeStore: false });
    disk = await mountTmpfs(24 * 1024 * 1024);
    work = await mkdtemp(join(tmpdir(), 'dicom-edge-fill-'));
    dataDir = join(disk.dir, 'data');
    await mkdir(dataDir);
    // Space held back, given back later as "space comes back".
    ballast = join(disk.dir, 'ballast');
    await writeFile(ballast, Buffer.alloc(4 * 1024 * 1024, 1));
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
      storage: { minFreeBytes: 0 },
      log: { level: 'warn' },
      destinations: [{ name: 'azure', baseUrl: azure.baseUrl, maxInstancesPerRequest: 4, maxConcurrentRequests: 1, retryBaseMs: 100, retryCapMs: 1000, requestTimeoutMs: 10_000 }],
    }));
  });

  after(async () => {
    if (app?.running()) app.daemon.process.kill('SIGKILL');
    await app?.exited;
    await azure?.stop();
    await disk?.unmount();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('DIMSE and STOW-RS fill it: refusals are out-of-resources, nothing acknowledged is lost, reads keep working', async () => {
    await start();
    // About 33 KB each: together well over what the disk holds.
    const batches = await Promise.all(Array.from({ length: SENDERS }, (_, i) => fresh(260, `sender-${i}`)));
    const stow = await fresh(600, 'stow');
    let sending = true;
    const stowReasons: number[] = [];
    // Until the DIMSE senders are done, and then until the disk refuses STOW-RS too.
    const stowing = (async () => {
      for (let i = 0; i < stow.instances.length && (sending || stowReasons.length === 0); i += 2) {
        const outcome = await stowAcknowledged(app!.api, stow.instances.slice(i, i + 2), acknowledged);
        assert.notEqual(outcome.status, undefined, 'the appliance answers every STOW-RS request');
        stowReasons.push(...outcome.failureReasons);
      }
    })();
    const outcomes = await Promise.all(batches.map((b) => storescuAcknowledged(app!.dimsePort, b.paths, b.instances, acknowledged)));
    sending = false;
    await stowing;

    const refusals = outcomes.flatMap((o) => o.refusals);
    assert.ok(refusals.length > 0, 'the disk filled: some C-STOREs were refused');
    assert.deepEqual([...new Set(refusals)], [OUT_OF_RESOURCES], 'every C-STORE refusal is 0xA700');
    assert.ok(stowReasons.length > 0, 'some STOW-RS instances were refused');
    assert.deepEqual([...new Set(stowReasons)], [OUT_OF_RESOURCES], 'every STOW-RS failure reason is out of resources');
    assert.ok(acknowledged.size > 100, `much was acknowledged before the disk filled (${acknowledged.size})`);
    assert.ok(app!.running(), `still up; its output:\n${(await app!.output()).slice(-4000)}`);
    await echo();

    // Queries and WADO on the full disk.
    const someUid = [...acknowledged.keys()][0]!;
    const instance = sent.find((i) => i.sopInstanceUid === someUid)!;
    const qido = await app!.api(`/dicom-web/studies?StudyInstanceUID=${instance.studyUid}`);
    assert.equal(qido.status, 200);
    const wado = await app!.api(`/dicom-web/studies/${instance.studyUid}/series/${instance.seriesUid}/instances/${instance.sopInstanceUid}`,
      { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    assert.equal(wado.status, 200);
    const boundary = parseMediaType(wado.headers.get('content-type') ?? '')!.params.boundary!;
    const parts = [];
    for await (const part of readMultipartRelated([new Uint8Array(await wado.arrayBuffer())], boundary)) parts.push(part);
    assert.equal(datasetSha(Buffer.from(parts[0]!.body)), acknowledged.get(someUid), 'WADO-RS serves the stored data set');

    await checkKept();
  });

  test('when space comes back, ingest resumes without a restart, and forwarding goes on', async () => {
    await unlink(ballast);
    const more = await fresh(3, 'after');
    const outcome = await storescuAcknowledged(app!.dimsePort, more.paths, more.instances, acknowledged);
    assert.deepEqual(outcome.refusals, [], outcome.output);
    assert.ok(more.instances.every((i) => acknowledged.has(i.sopInstanceUid)), 'all three acknowledged');
    const stowMore = await fresh(2, 'after-stow');
    assert.equal((await stowAcknowledged(app!.api, stowMore.instances, acknowledged)).status, 200);
    const deliveredBefore = azure.storedInstances().length;
    const deadline = Date.now() + 60_000;
    while (azure.storedInstances().length === deliveredBefore) {
      assert.ok(Date.now() < deadline, 'forwarding delivers more');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await checkKept();
  });

  test('another writer fills the disk while the appliance runs; the appliance restarts on the full disk', async () => {
    await disk.fill();
    const refused = await fresh(2, 'refused');
    const outcome = await storescuAcknowledged(app!.dimsePort, refused.paths, refused.instances, acknowledged);
    assert.deepEqual(outcome.refusals, [OUT_OF_RESOURCES, OUT_OF_RESOURCES], outcome.output);
    const stowRefused = await fresh(1, 'refused-stow');
    assert.deepEqual((await stowAcknowledged(app!.api, stowRefused.instances, acknowledged)).failureReasons, [OUT_OF_RESOURCES]);
    assert.equal(await stop(), 0, 'stops cleanly on the full disk');

    await start();
    await echo();
    const qido = await app!.api('/dicom-web/studies');
    assert.equal(qido.status, 200, 'queries answer after a restart on the full disk');
    await checkKept();
    await disk.unfill();
    const after = await fresh(1, 'after-restart');
    assert.deepEqual((await storescuAcknowledged(app!.dimsePort, after.paths, after.instances, acknowledged)).refusals, []);
    assert.equal(await stop(), 0);
    await checkKept();
  });
});
