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

/** Runs the ingest child, kills it with SIGKILL after `delayMs` of ingesting, returns what it reported done. */
function runAndKill(dataDir: string, delayMs: number): Promise<Map<string, string>> {
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
        if (word === 'DONE') done.set(uid!, sha!);
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
  let seed = 12345;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < KILLS; round++) {
    const done = await runAndKill(dataDir, Math.floor(random() * 250));
    for (const [uid, sha] of done) acknowledged.set(uid, sha);

    const { archive, recovery } = await Archive.open({
      dataDir,
      limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
      logger: pino({ level: 'silent' }),
      route: () => ['cloud'],
    });
    try {
      assert.equal(recovery.unreadableFiles, 0, `round ${round}: no unreadable file`);
      for (const [uid, sha] of acknowledged) {
        const row = indexDb(archive).prepare('SELECT path, sha256, file_missing FROM instances WHERE sop_instance_uid = ?').get(uid) as
          | { path: string; sha256: string; file_missing: number }
          | undefined;
        assert.ok(row, `round ${round}: acknowledged ${uid} is indexed`);
        assert.equal(row.file_missing, 0);
        assert.equal(row.sha256, sha, `round ${round}: index has the acknowledged bytes' hash`);
        const bytes = await readFile(archive.paths.absolute(row.path));
        assert.equal(createHash('sha256').update(bytes).digest('hex'), sha, `round ${round}: file is byte-identical`);
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
      await archive.close();
    }
  }
  assert.ok(acknowledged.size > KILLS, `the child acknowledged ${acknowledged.size} instances across ${KILLS} kills`);
});
