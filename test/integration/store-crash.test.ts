import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { indexDb } from '../support/index-db.js';

const CHILD = fileURLToPath(new URL('./children/ingest-loop.ts', import.meta.url));
const KILLS = 50;

/**
 * What each instance may hold after a crash: the bytes last acknowledged, or any sent after them whose
 * ingest was cut short (a replacement may or may not have taken place).
 */
class Versions {
  private readonly allowed = new Map<string, Set<string>>();

  sent(uid: string, sha: string): void {
    const set = this.allowed.get(uid) ?? new Set<string>();
    set.add(sha);
    this.allowed.set(uid, set);
  }

  acknowledged(uid: string, sha: string): void {
    this.allowed.set(uid, new Set([sha]));
  }

  /** After a restart, the bytes found are the ones from now on. */
  settled(uid: string, sha: string): void {
    this.allowed.set(uid, new Set([sha]));
  }

  allows(uid: string, sha: string): boolean {
    return this.allowed.get(uid)?.has(sha) ?? false;
  }
}

/** Runs the ingest child, kills it with SIGKILL after `delayMs` of ingesting, returns what it reported done. */
function runAndKill(dataDir: string, delayMs: number, versions: Versions): Promise<Map<string, string>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    const done = new Map<string, string>();
    let buffer = '';
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (data: Buffer) => {
      buffer += data.toString();
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line === 'READY') setTimeout(() => child.kill('SIGKILL'), delayMs);
        const [word, uid, sha] = line.split(' ');
        if (word === 'SEND') versions.sent(uid!, sha!);
        if (word === 'DONE') {
          done.set(uid!, sha!);
          versions.acknowledged(uid!, sha!);
        }
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(done);
      else reject(new Error(`ingest child exited with ${code}: ${stderr}`));
    });
  });
}

async function allFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

let dataDir: string;
before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-crash-'));
});
after(async () => rm(dataDir, { recursive: true, force: true }));

test(`every acknowledged instance survives ${KILLS} SIGKILLs, byte-identical, indexed and queued`, { timeout: 600_000 }, async () => {
  const acknowledged = new Map<string, string>();
  const versions = new Versions();
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  let replacements = 0;
  for (let round = 0; round < KILLS; round++) {
    const done = await runAndKill(dataDir, Math.floor(random() * 250), versions);
    for (const [uid, sha] of done) {
      if (acknowledged.has(uid)) replacements++;
      acknowledged.set(uid, sha);
    }

    const { archive, recovery } = await Archive.open({
      dataDir,
      limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
      logger: pino({ level: 'silent' }),
      route: () => ['cloud'],
    });
    try {
      assert.equal(recovery.unreadableFiles, 0, `round ${round}: no unreadable file`);
      for (const uid of acknowledged.keys()) {
        const row = indexDb(archive).prepare('SELECT path, sha256, file_missing FROM instances WHERE sop_instance_uid = ?').get(uid) as
          | { path: string; sha256: string; file_missing: number }
          | undefined;
        assert.ok(row, `round ${round}: acknowledged ${uid} is indexed`);
        assert.equal(row.file_missing, 0);
        const bytes = await readFile(archive.paths.absolute(row.path));
        const onDisk = createHash('sha256').update(bytes).digest('hex');
        assert.equal(row.sha256, onDisk, `round ${round}: the index describes the file in place (${uid})`);
        assert.ok(versions.allows(uid, onDisk), `round ${round}: ${uid} holds the acknowledged bytes, or a replacement sent after them`);
        versions.settled(uid, onDisk);
        const queued = archive.outbox.rowsFor(uid);
        assert.deepEqual(queued.map((r) => [r.destination, r.state]), [['cloud', 'pending']], `round ${round}: ${uid} is queued`);
      }
      // Index and files agree, and no temp file is visible.
      const files = (await allFiles(archive.paths.root)).map((f) => relative(archive.paths.root, f)).sort();
      assert.deepEqual(files.filter((f) => !f.endsWith('.dcm')), [], `round ${round}: no temp file remains`);
      const rows = (indexDb(archive).prepare('SELECT path FROM instances').all() as Array<{ path: string }>).map((r) => r.path).sort();
      assert.deepEqual(files, rows, `round ${round}: every file has a row and every row a file`);
      const unqueued = indexDb(archive).prepare('SELECT COUNT(*) AS n FROM instances i WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.sop_instance_uid = i.sop_instance_uid)').get() as { n: number };
      assert.equal(unqueued.n, 0, `round ${round}: every indexed instance is queued`);
    } finally {
      indexDb(archive).close();
      await archive.close();
    }
  }
  assert.ok(acknowledged.size > KILLS, `the child acknowledged ${acknowledged.size} instances across ${KILLS} kills`);
  assert.ok(replacements >= KILLS / 5, `the child replaced acknowledged instances (${replacements} times)`);
});
