// The headless appliance on a real, completely full file system (a small tmpfs): it must start, stay up,
// answer C-ECHO, queries, WADO and the UI, acknowledge a re-sent instance it holds, refuse new ones with
// 0xA700 (DIMSE) and the out-of-resources failure reason (STOW-RS), and recover once space returns.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { buildMultipartRelated, parseMediaType, readMultipartRelated } from '../doubles/multipart-related.js';
import { startApplianceProcess, type ApplianceProcess } from '../support/appliance-process.js';
import { makeInstance, makeStudy, writeInstances, type GeneratedInstance } from '../support/fixtures.js';
import { requireTool, run, runOk } from '../support/process.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../support/tmpfs.js';

const OUT_OF_RESOURCES = 0xa700;
const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

const skip = await tmpfsUnavailable();

describe('the appliance on a full disk', { skip, timeout: 240_000 }, () => {
  let disk: Tmpfs;
  let work: string;
  let dataDir: string;
  let app: ApplianceProcess | undefined;
  let stored: GeneratedInstance[];
  let storedPaths: string[];
  let fresh: GeneratedInstance;
  let freshPath: string;

  const logFile = (name: string) => join(work, `${name}.log`);
  const storescu = (path: string) => run(requireTool('storescu', 'dcmtk'), ['-v', '-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(app!.dimsePort), path], { timeoutMs: 60_000 });
  const stopApp = async () => {
    if (!app) return undefined;
    app.daemon.process.kill('SIGTERM');
    const code = await app.exited;
    app = undefined;
    return code;
  };
  const logLines = async () => {
    const dir = join(dataDir, 'logs');
    let text = '';
    for (const name of await readdir(dir)) text += await readFile(join(dir, name), 'utf8');
    return text;
  };

  before(async () => {
    requireTool('storescu', 'dcmtk');
    requireTool('echoscu', 'dcmtk');
    disk = await mountTmpfs(24 * 1024 * 1024);
    work = await mkdtemp(join(tmpdir(), 'dicom-edge-full-disk-'));
    dataDir = join(disk.dir, 'data');
    await mkdir(dataDir);
    // No reserve: what refuses ingest here is the full disk itself, not the reserve check.
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({ storage: { minFreeBytes: 0 }, log: { level: 'info' } }));
    stored = makeStudy({ series: 1, instancesPerSeries: 2 });
    storedPaths = await writeInstances(join(work, 'stored'), stored);
    fresh = makeStudy({ series: 1, instancesPerSeries: 1 })[0]!;
    [freshPath] = await writeInstances(join(work, 'fresh'), [fresh]);
  });

  after(async () => {
    if (app?.running()) app.daemon.process.kill('SIGKILL');
    await app?.exited;
    await disk?.unmount();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('it starts on a full disk, stays up, serves what it holds, and refuses new instances with out-of-resources', async () => {
    // A first run with room: the study arrives and is acknowledged.
    app = await startApplianceProcess({ dataDir, logFile: logFile('first') });
    await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(app.dimsePort), ...storedPaths], { timeoutMs: 60_000 });
    assert.equal(await stopApp(), 0);
    // The stop came while an upload was under way: the next start's housekeeping has a row to write back.
    const db = new Database(join(dataDir, 'index.sqlite'));
    db.prepare("UPDATE outbox SET state = 'sending' WHERE id = (SELECT MIN(id) FROM outbox)").run();
    db.close();

    await disk.fill();
    assert.equal(await disk.free(), 0, 'the file system is full');

    app = await startApplianceProcess({ dataDir, logFile: logFile('full') });

    await runOk(requireTool('echoscu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(app.dimsePort)], { timeoutMs: 30_000 });

    const refused = await storescu(freshPath);
    assert.match(refused.stdout + refused.stderr, /Out ?Of ?Resources|0xa700/i, `C-STORE refused with 0xA700:\n${refused.stdout}${refused.stderr}`);

    // A sender re-sending what the appliance already holds (its answer got lost) is acknowledged.
    const resent = await storescu(storedPaths[0]!);
    assert.match(resent.stdout + resent.stderr, /Received Store Response \(Success\)/, `re-send of a stored instance:\n${resent.stdout}${resent.stderr}`);

    const stowBody = buildMultipartRelated([makeInstance({ studyUid: fresh.studyUid })]);
    const stow = await app.api('/dicom-web/studies', { method: 'POST', body: new Uint8Array(stowBody.body), headers: { 'content-type': stowBody.contentType } });
    assert.equal(stow.status, 409);
    const stowJson = (await stow.json()) as Record<string, { Value: Array<Record<string, { Value: number[] }>> }>;
    assert.equal(stowJson['00081198']!.Value[0]!['00081197']!.Value[0], OUT_OF_RESOURCES, 'FailureReason is out of resources');

    const studies = await app.api(`/dicom-web/studies?StudyInstanceUID=${stored[0]!.studyUid}`);
    assert.equal(studies.status, 200);
    assert.equal(((await studies.json()) as unknown[]).length, 1, 'QIDO finds the stored study');
    const nothingNew = await app.api(`/dicom-web/studies?StudyInstanceUID=${fresh.studyUid}`);
    assert.equal(nothingNew.status, 204, 'nothing of the refused instances was kept');

    const one = stored[0]!;
    const wado = await app.api(`/dicom-web/studies/${one.studyUid}/series/${one.seriesUid}/instances/${one.sopInstanceUid}`,
      { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' } });
    assert.equal(wado.status, 200);
    const boundary = parseMediaType(wado.headers.get('content-type') ?? '')!.params.boundary!;
    const parts = [];
    for await (const part of readMultipartRelated([new Uint8Array(await wado.arrayBuffer())], boundary)) parts.push(part);
    assert.equal(parts.length, 1);
    // The archive keeps the data set as received, under a file meta header of its own.
    const served = parts[0]!.body;
    assert.equal(served.subarray(128, 132).toString('latin1'), 'DICM');
    // After the meta header: (0002,0000) holds its length, from byte 144 on.
    const dataSet = (bytes: Buffer) => bytes.subarray(144 + bytes.readUInt32LE(140));
    assert.equal(sha(dataSet(served)), sha(dataSet(one.buffer)), 'WADO-RS serves the stored data set');

    const ui = await app.api('/');
    assert.equal(ui.status, 200);
    assert.match(ui.headers.get('content-type') ?? '', /text\/html/);

    assert.ok(app.running(), 'still up');
    const output = await app.output();
    assert.equal(output.match(/cannot write to the log file/g)?.length, 1, `stderr says once that log lines are dropped:\n${output}`);
  });

  test('once space returns, ingest works again and the log says how many lines it lost', async () => {
    assert.ok(app?.running(), 'the appliance from the full-disk test is still up');
    await disk.unfill();
    const accepted = await storescu(freshPath);
    assert.match(accepted.stdout + accepted.stderr, /Received Store Response \(Success\)/, `${accepted.stdout}${accepted.stderr}`);
    const deadline = Date.now() + 30_000;
    // The logger retries at most once a second; each C-ECHO logs a line that can be the retry.
    while (!(await logLines()).includes('"event":"log-lines-dropped"')) {
      assert.ok(Date.now() < deadline, `no log-lines-dropped line in the log:\n${await logLines()}`);
      await runOk(requireTool('echoscu', 'dcmtk'), ['-aec', 'DICOMEDGE', '127.0.0.1', String(app!.dimsePort)], { timeoutMs: 30_000 });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const note = JSON.parse((await logLines()).split('\n').find((line) => line.includes('"event":"log-lines-dropped"'))!) as Record<string, unknown>;
    assert.equal(note.reason, 'ENOSPC');
    assert.ok((note.dropped as number) > 0);
    assert.equal(await stopApp(), 0, 'exits 0 on SIGTERM');
  });
});
