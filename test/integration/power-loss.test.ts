// Power cuts, not just SIGKILL: the appliance's data dir is on a file system that drops whatever was not
// synced (test/support/lossyfs.py), and the power is cut at random moments while several storescu senders
// and a STOW-RS client send and forwarding uploads to the Azure double. After each cut the file system comes
// back with only what was durable, the archive recovers, and every instance acknowledged before any cut must
// be there, byte-identical, indexed and queued; every delivered mark must be held by the upstream; the index
// must pass SQLite's integrity check; no file may be half-written.
// POWER_CUTS sets the number of cuts (default 50: 2.5 to 4 minutes here, with the machine idle or busy).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { fileSecretBox, sealSettingsFile, SECRET_KEY_FILE } from '../../main/core/forward/secrets.js';
import { SettingsFile } from '../../main/core/settings/settings-file.js';
import { Archive } from '../../main/core/store/archive.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { datasetSha, sha256 as sha, storescuAcknowledged, stowAcknowledged } from '../support/acknowledged.js';
import { startApplianceProcess } from '../support/appliance-process.js';
import { makeStudy, writeInstances } from '../support/fixtures.js';
import { indexDb } from '../support/index-db.js';
import { lossyFsUnavailable, mountLossyFs, type LossyFs } from '../support/lossyfs.js';
import { requireTool } from '../support/process.js';

const CUTS = Number(process.env.POWER_CUTS ?? 50);
const SENDERS = 3;
const skip = await lossyFsUnavailable();

/** One run of the appliance on `fs`: load, a cut at a random moment, and what was acknowledged before it. */
interface Cut {
  acknowledged: Map<string, string>;
  lostBytes: number;
  lostEntries: number;
}

class PowerLossRig {
  private round = 0;
  readonly acknowledged = new Map<string, string>();
  private seed: number;
  /** Files already read whole and found as their rows describe them (path → hash): nothing rewrites them in this test. */
  private readonly verified = new Map<string, string>();

  constructor(readonly fs: LossyFs, readonly dataDir: string, readonly work: string, readonly azure: AzureDicomDouble, seed: number) {
    this.seed = seed;
  }

  random(): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2 ** 31;
    return this.seed / 2 ** 31;
  }

  static async create(fs: LossyFs, work: string, azure: AzureDicomDouble, seed: number): Promise<PowerLossRig> {
    const dataDir = join(fs.dir, 'data');
    await mkdir(dataDir);
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
      storage: { minFreeBytes: 0 },
      log: { level: 'warn' },
      destinations: [{ name: 'azure', baseUrl: azure.baseUrl, maxInstancesPerRequest: 4, maxConcurrentRequests: 2, retryBaseMs: 50, retryCapMs: 500, requestTimeoutMs: 10_000 }],
    }));
    await fs.sync(); // the machine was set up before the first cut
    return new PowerLossRig(fs, dataDir, work, azure, seed);
  }

  /** Starts the appliance, sends while forwarding runs, cuts the power at a random moment, kills the appliance. */
  async runUntilCut(): Promise<Cut> {
    const round = this.round++;
    const dir = join(this.work, `round-${round}`);
    const app = await startApplianceProcess({ dataDir: this.dataDir, logFile: join(this.work, `round-${round}.log`) });
    const acknowledged = new Map<string, string>();
    let stopped = false;
    try {
      const perSender = Array.from({ length: SENDERS }, () => makeStudy({ series: 1, instancesPerSeries: 8, rows: 8, columns: 8 }));
      const stow = makeStudy({ series: 2, instancesPerSeries: 6, rows: 8, columns: 8 });
      const paths = await Promise.all(perSender.map((instances, i) => writeInstances(join(dir, `sender-${i}`), instances)));
      const senders = perSender.map((instances, i) => storescuAcknowledged(app.dimsePort, paths[i]!, instances, acknowledged));
      const stowing = (async () => {
        for (let i = 0; i < stow.length && !stopped; i += 2) {
          if ((await stowAcknowledged(app.api, stow.slice(i, i + 2), acknowledged)).status === undefined) break;
        }
      })();
      await new Promise((resolve) => setTimeout(resolve, 100 + Math.floor(this.random() * 1000)));
      const { lostBytes, lostEntries } = await this.fs.cut();
      stopped = true;
      app.daemon.process.kill('SIGKILL');
      await app.exited;
      await Promise.all([...senders, stowing]);
      return { acknowledged, lostBytes, lostEntries };
    } finally {
      stopped = true;
      if (app.running()) app.daemon.process.kill('SIGKILL');
      await app.exited;
      await rm(dir, { recursive: true, force: true });
      for (const [uid, digest] of acknowledged) this.acknowledged.set(uid, digest);
    }
  }

  /** After a cut: the file system reboots, the archive recovers; returns every broken promise found. */
  async rebootAndCheck(): Promise<string[]> {
    await this.fs.reboot();
    const problems: string[] = [];
    const { archive, recovery } = await Archive.open({
      dataDir: this.dataDir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
      logger: pino({ level: 'silent' }), route: () => ['azure'],
    });
    try {
      const db = indexDb(archive);
      const integrity = db.pragma('integrity_check', { simple: true });
      if (integrity !== 'ok') problems.push(`the index fails its integrity check: ${String(integrity)}`);
      if (recovery.unreadableFiles > 0) problems.push(`${recovery.unreadableFiles} file(s) in the archive cannot be read (half-written)`);
      const rows = new Map((db.prepare('SELECT sop_instance_uid AS uid, path, sha256, size_bytes AS size, file_missing AS missing FROM instances WHERE local = 1').all() as
        Array<{ uid: string; path: string; sha256: string; size: number; missing: number }>).map((r) => [r.uid, r]));
      const queued = new Set((db.prepare("SELECT sop_instance_uid AS uid FROM outbox WHERE destination = 'azure'").all() as Array<{ uid: string }>).map((r) => r.uid));
      for (const [uid, digest] of this.acknowledged) {
        const row = rows.get(uid);
        if (!row) problems.push(`acknowledged ${uid} is not in the index`);
        else if (row.missing) problems.push(`acknowledged ${uid} is indexed, but its file is missing`);
        else if (this.verified.get(row.path) !== row.sha256 && datasetSha(await readFile(archive.paths.absolute(row.path)).catch(() => Buffer.alloc(0))) !== digest) {
          problems.push(`acknowledged ${uid} is stored with other bytes than were sent`);
        }
        if (!queued.has(uid)) problems.push(`acknowledged ${uid} is not queued for forwarding`);
      }
      // Every file is whole: its bytes are those its row was indexed with, and nothing else lies about.
      const files = new Set<string>();
      for (const entry of await readdir(archive.paths.root, { withFileTypes: true, recursive: true })) {
        if (!entry.isFile()) continue;
        const path = relative(archive.paths.root, join(entry.parentPath, entry.name));
        if (entry.name.endsWith('.dcm')) files.add(path);
        else if (entry.name.endsWith('.part')) problems.push(`a temp file is left after recovery: ${path}`);
      }
      for (const row of rows.values()) {
        const key = row.path.split('/').join(sep);
        if (!files.has(key)) {
          if (!row.missing) problems.push(`${row.uid}: indexed as present, but ${row.path} is not there`);
          continue;
        }
        files.delete(key);
        if (this.verified.get(row.path) === row.sha256) continue;
        const bytes = await readFile(archive.paths.absolute(row.path));
        if (bytes.length !== row.size || sha(bytes) !== row.sha256) problems.push(`${row.path} is not the file its row describes (half-written?)`);
        else this.verified.set(row.path, row.sha256);
      }
      for (const path of files) problems.push(`${path} is in the archive without a row`);
      // Every delivered mark is true: the upstream holds those very bytes.
      const delivered = db.prepare("SELECT o.sop_instance_uid AS uid, i.sha256 FROM outbox o JOIN instances i USING (sop_instance_uid) WHERE o.state = 'delivered'").all() as Array<{ uid: string; sha256: string }>;
      for (const { uid, sha256 } of delivered) {
        const held = this.azure.storedInstance(uid);
        if (!held) problems.push(`${uid} is marked delivered, but the upstream does not hold it`);
        else if (sha(held.bytes) !== sha256) problems.push(`${uid} is marked delivered, but the upstream holds other bytes`);
      }
    } finally {
      indexDb(archive).close();
      await archive.close();
    }
    return problems;
  }
}

describe('power loss', { skip, timeout: 900_000 }, () => {
  let azure: AzureDicomDouble;
  let work: string;
  const mounted: LossyFs[] = [];

  before(async () => {
    requireTool('storescu', 'dcmtk');
    azure = await AzureDicomDouble.start();
    // Each upload takes a while, so cuts land with requests in flight.
    await azure.setFault({ kind: 'delay', ms: 40, beforeStore: false });
    work = await mkdtemp(join(tmpdir(), 'dicom-edge-power-loss-'));
  });

  after(async () => {
    for (const fs of mounted) await fs.unmount().catch(() => undefined);
    await azure?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test(`every acknowledged instance survives ${CUTS} power cuts during ingest and forwarding`, async () => {
    const fs = await mountLossyFs();
    mounted.push(fs);
    const rig = await PowerLossRig.create(fs, await mkdtemp(join(work, 'cuts-')), azure, 2026);
    let lostBytes = 0;
    let lostEntries = 0;
    for (let round = 0; round < CUTS; round++) {
      const cut = await rig.runUntilCut();
      lostBytes += cut.lostBytes;
      lostEntries += cut.lostEntries;
      const problems = await rig.rebootAndCheck();
      assert.deepEqual(problems, [], `after power cut ${round + 1} of ${CUTS} (${cut.acknowledged.size} acknowledged in that run)`);
    }
    const delivered = azure.storedInstances().length;
    process.stdout.write(`# power loss: ${CUTS} cuts, ${rig.acknowledged.size} instances acknowledged, ${delivered} held upstream; `
      + `the cuts dropped ${lostBytes} unsynced bytes and ${lostEntries} unsynced directory entries\n`);
    assert.ok(rig.acknowledged.size >= CUTS * 5, `the cuts fell during ingest: ${rig.acknowledged.size} acknowledged`);
    assert.ok(lostBytes > 0 && lostEntries > 0, 'the cuts dropped unsynced writes (the file system was not synced by accident)');
    assert.ok(delivered > 0, 'forwarding ran between the cuts');
  });

  test('the secret key and the settings it sealed survive a power cut right after they were written', async () => {
    const fs = await mountLossyFs();
    mounted.push(fs);
    const dir = join(fs.dir, 'secrets');
    await mkdir(dir);
    const settingsFile = join(dir, 'settings.json');
    await writeFile(settingsFile, JSON.stringify({ destinations: [{ name: 'd', baseUrl: 'https://example.org', auth: { kind: 'basic', username: 'u', password: 'typed-in' } }] }));
    await fs.sync();
    const sealed = fileSecretBox(dir).seal('a destination secret');
    assert.equal(sealSettingsFile(settingsFile, fileSecretBox(dir)), true);
    await fs.cut();
    await fs.reboot();
    assert.equal((await readFile(join(dir, SECRET_KEY_FILE), 'utf8')).length > 0, true, 'the key file is whole');
    const box = fileSecretBox(dir);
    assert.equal(box.open(sealed), 'a destination secret', 'what the key sealed before the cut still opens');
    const settings = JSON.parse(await readFile(settingsFile, 'utf8')) as { destinations: Array<{ auth: { password: string } }> };
    assert.match(settings.destinations[0]!.auth.password, /^enc:v1:/, 'the sealed settings file is whole');
    assert.equal(box.open(settings.destinations[0]!.auth.password), 'typed-in');
  });

  test('settings saved before a power cut are the settings after it', async () => {
    const fs = await mountLossyFs();
    mounted.push(fs);
    const dir = join(fs.dir, 'settings');
    const { file, settings } = await SettingsFile.open(dir);
    await fs.sync();
    await file.write({ ...settings, destinations: [{ name: 'cloud', baseUrl: 'https://example.org/dicomweb' }] });
    await fs.cut();
    await fs.reboot();
    const { settings: after } = await SettingsFile.open(dir);
    assert.deepEqual(after.destinations.map((d) => d.name), ['cloud'], 'the saved destination is there');
  });

  test('the check notices a loss: with directory fsyncs ignored, an acknowledged instance is gone after a cut', async () => {
    const fs = await mountLossyFs({ ignore: 'fsyncdir' });
    mounted.push(fs);
    const rig = await PowerLossRig.create(fs, await mkdtemp(join(work, 'careless-')), azure, 7);
    let problems: string[] = [];
    for (let round = 0; round < 5 && problems.length === 0; round++) {
      await rig.runUntilCut();
      problems = await rig.rebootAndCheck();
    }
    assert.ok(rig.acknowledged.size > 0, 'something was acknowledged');
    assert.ok(problems.some((p) => /^acknowledged .* (is not in the index|file is missing)/.test(p)), `a loss is reported: ${problems.slice(0, 5).join('; ')}`);
  });
});
