// The viewer with compressed images: JPEG baseline, JPEG lossless, JPEG-LS, JPEG 2000 and RLE instances
// sent by DCMTK dcmsend in their own transfer syntax are drawn by the loader's codecs in Chromium; a syntax
// it cannot decode shows a clear message instead of a blank canvas.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requireTool, runOk } from '../support/peers.js';
import { makeInstanceInSyntax, type InstanceInSyntax, type SyntaxName } from '../support/transfer-syntax.js';
import { newUid } from '../support/uid.js';
import { buildRenderer, canvasStats, screenshot, startUiSession, type UiSession } from './ui-harness.js';
import { indexDb } from '../support/index-db.js';

const COMPRESSED: SyntaxName[] = ['jpeg-baseline', 'jpeg-lossless', 'jpeg-ls', 'jpeg2000', 'rle'];
const MPEG2_MAIN_PROFILE = '1.2.840.10008.1.2.4.100';

/**
 * A Part 10 file whose meta header says MPEG2 Main Profile (an encapsulated syntax the archive stores
 * but no image codec of the viewer decodes), made from a JPEG baseline file by rewriting (0002,0010).
 */
async function relabelTransferSyntax(path: string, from: string, to: string): Promise<void> {
  const bytes = await readFile(path);
  const pad = (uid: string) => (uid.length % 2 ? `${uid}\0` : uid);
  const oldValue = Buffer.from(pad(from), 'latin1');
  const newValue = Buffer.from(pad(to), 'latin1');
  // Explicit VR little endian: tag (0002,0010), "UI", 2-byte length, value.
  const element = Buffer.concat([Buffer.from([0x02, 0x00, 0x10, 0x00]), Buffer.from('UI', 'latin1'), Buffer.from([oldValue.length, 0]), oldValue]);
  const at = bytes.indexOf(element, 132);
  assert.ok(at > 0, `no Transfer Syntax UID ${from} in ${path}`);
  const replaced = Buffer.concat([bytes.subarray(0, at + 6), Buffer.from([newValue.length, 0]), newValue, bytes.subarray(at + element.length)]);
  // (0002,0000) File Meta Information Group Length: the first element after the preamble, UL value at 140.
  assert.equal(replaced.readUInt32LE(128), 0x4d434944, 'DICM prefix');
  replaced.writeUInt32LE(replaced.readUInt32LE(140) + newValue.length - oldValue.length, 140);
  await writeFile(path, replaced);
}

describe('viewer with compressed transfer syntaxes in Chromium', { timeout: 180_000 }, () => {
  let ui: UiSession;
  let dir: string;
  const studyUid = newUid();
  const sent = new Map<string, InstanceInSyntax>();

  before(async () => {
    buildRenderer();
    dir = await mkdtemp(join(tmpdir(), 'ui-codecs-'));
    ui = await startUiSession();
    const names: Array<SyntaxName | 'mpeg2'> = [...COMPRESSED, 'mpeg2'];
    for (const [i, name] of names.entries()) {
      const instance = await makeInstanceInSyntax(join(dir, name), name === 'mpeg2' ? 'jpeg-baseline' : name, {
        studyUid, seriesNumber: i + 1, instanceNumber: 1, rows: 128, columns: 128, patientName: 'CODEC^CARL', patientId: 'PID-CODEC',
        seriesDescription: name,
      });
      if (name === 'mpeg2') {
        await relabelTransferSyntax(instance.path, instance.transferSyntaxUid, MPEG2_MAIN_PROFILE);
        instance.transferSyntaxUid = MPEG2_MAIN_PROFILE;
      }
      sent.set(name, instance);
    }
    // dcmsend proposes each file's own transfer syntax and sends the bytes as they are.
    await runOk(requireTool('dcmsend', 'dcmtk'),
      ['-aet', 'MODALITY', '-aec', 'DICOMEDGE', '127.0.0.1', String(ui.appliance.dimsePort), ...[...sent.values()].map((s) => s.path)], { timeoutMs: 60_000 });
  });
  after(async () => {
    await ui?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const open = async (instance: InstanceInSyntax) => {
    await ui.page.evaluate((hash) => { location.hash = hash; }, `#/viewer/${instance.studyUid}/${instance.seriesUid}`);
    await ui.page.waitForFunction((series) => {
      const viewer = document.querySelector<HTMLElement>('.viewer');
      return location.hash.endsWith(series) && viewer && (viewer.dataset.index === '0' || viewer.dataset.error === 'true');
    }, instance.seriesUid, { timeout: 30_000 });
  };

  it('stores each instance in the syntax it was sent in', () => {
    const stored = indexDb(ui.appliance.appliance.archive).prepare('SELECT sop_instance_uid AS uid, transfer_syntax_uid AS ts FROM instances WHERE study_uid = ?')
      .all(studyUid) as Array<{ uid: string; ts: string }>;
    assert.deepEqual(new Map(stored.map((r) => [r.uid, r.ts])), new Map([...sent.values()].map((s) => [s.sopInstanceUid, s.transferSyntaxUid])));
  });

  for (const name of COMPRESSED) {
    it(`draws a ${name} image`, async () => {
      await open(sent.get(name)!);
      const message = await ui.page.locator('.viewer-message').innerText().catch(() => '');
      assert.equal(await ui.page.locator('.viewer').getAttribute('data-error'), 'false', `viewer error for ${name}: ${message}`);
      const stats = await canvasStats(ui.page);
      assert.ok(stats.total > 0 && stats.nonBlack > stats.total * 0.05, `canvas is blank for ${name}: ${JSON.stringify(stats)}`);
      await screenshot(ui.page, `viewer-${name}`);
    });
  }

  it('allows eval in the decode worker\'s own policy only, never in the page', async () => {
    const worker = (await readdir(join(process.cwd(), 'dist', 'renderer', 'assets'))).find((f) => /^index\.worker\.bundle\.min\.worker-[\w-]+\.js$/.test(f));
    assert.ok(worker, 'the decode worker is built as its own asset');
    const workerResponse = await ui.appliance.api(`/assets/${worker}`);
    await workerResponse.arrayBuffer();
    assert.equal(workerResponse.status, 200);
    assert.match(workerResponse.headers.get('content-security-policy') ?? '', /script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'/);
    for (const path of ['/', '/api/info']) {
      const response = await ui.appliance.api(path);
      await response.arrayBuffer();
      assert.doesNotMatch(response.headers.get('content-security-policy') ?? '', /'unsafe-eval'/, path);
    }
  });

  it('says clearly when it cannot decode a syntax (MPEG2)', async () => {
    await open(sent.get('mpeg2')!);
    const message = ui.page.locator('.viewer-message');
    assert.equal(await message.isVisible(), true);
    assert.match(await message.innerText(), /cannot be shown: it is encoded as .*\(1\.2\.840\.10008\.1\.2\.4\.100\), which the viewer does not decode/);
    await screenshot(ui.page, 'viewer-undecodable');
    const unexpected = ui.pageErrors.filter((e) => /Content Security Policy|Refused|wasm|worker/i.test(e));
    assert.deepEqual(unexpected, []);
  });
});
