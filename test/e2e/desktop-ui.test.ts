// The desktop UI in Chromium against a running headless appliance fed by storescu, with the Azure DICOM
// double as the cloud. Screenshots of each screen go to test-artifacts/.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { makeInstance } from '../support/instance.js';
import { freePort, startStorescp } from '../support/peers.js';
import { newUid } from '../support/uid.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { buildRenderer, canvasStats, screenshot, startUiSession, storescu, type UiSession } from './ui-harness.js';

const today = new Date();
const da = (d: Date) => `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, '0')}${String(d.getDate()).padStart(2, '0')}`;
const fast = { retryBaseMs: 50, retryCapMs: 400, requestTimeoutMs: 5_000 };

describe('desktop UI in Chromium', { timeout: 240_000 }, () => {
  let ui: UiSession;
  let azure: AzureDicomDouble;
  let ct: GeneratedInstance[];
  let mr: GeneratedInstance[];

  before(async () => {
    buildRenderer();
    azure = await AzureDicomDouble.start();
    ui = await startUiSession();
  });
  after(async () => {
    await ui?.stop();
    await azure?.stop();
  });

  const row = (studyUid: string) => ui.page.locator(`.row.study[data-uid="${studyUid}"]`);
  const pillOf = (studyUid: string) => row(studyUid).locator('.pill');

  it('shows a study sent by storescu without a reload, and search and filters work', async () => {
    const { page } = ui;
    await page.waitForSelector('.empty:not([hidden])');
    // makeInstance draws the same gradient in every instance; a rescale intercept per slice makes each slice look different.
    const studyUid = newUid();
    ct = [1, 2].flatMap((seriesNumber) => {
      const seriesUid = newUid();
      return [0, 1, 2, 3, 4, 5].map((i) => {
        const sopInstanceUid = newUid();
        const buffer = makeInstance({ studyUid, seriesUid, sopInstanceUid, seriesNumber, instanceNumber: i + 1, patientName: 'DOE^JANE',
          patientId: 'PID-100', accession: 'ACC-CT-1', studyDescription: 'CT THORAX', studyDate: da(today), rows: 128, columns: 128,
          extra: { RescaleIntercept: String(-1024 + i * 150), RescaleSlope: '1', SliceLocation: String(i * 2.5) } });
        return { buffer, studyUid, seriesUid, sopInstanceUid };
      });
    });
    await storescu(ui.appliance, ct);
    await row(ct[0]!.studyUid).waitFor();
    await page.waitForFunction((uid) => document.querySelector(`.row.study[data-uid="${uid}"]`)?.children[8]?.textContent === '12', ct[0]!.studyUid);
    assert.match(await row(ct[0]!.studyUid).innerText(), /DOE, JANE[\s\S]*PID-100[\s\S]*CT THORAX[\s\S]*ACC-CT-1/);
    assert.equal(await pillOf(ct[0]!.studyUid).innerText(), 'no destination');
    // The local size (studies.size_bytes through /api/sync) fills the Size column, and the footer follows what is stored.
    const sizes = await (await ui.appliance.api(`/api/sync?study=${ct[0]!.studyUid}`)).json() as Array<{ sizeBytes: number }>;
    assert.ok(sizes[0]!.sizeBytes > 12 * 128 * 128 * 2, `study size ${sizes[0]!.sizeBytes}`);
    await page.waitForFunction((uid) => /^\d+(\.\d+)? (KB|MB)$/.test(document.querySelector(`.row.study[data-uid="${uid}"] .c-size`)?.textContent ?? ''), ct[0]!.studyUid);
    await page.waitForFunction(() => /(?<![\d.])[1-9][\d.]* (KB|MB) stored/.test(document.querySelector('.footer-info')?.textContent ?? ''));

    const weekAgo = new Date(today.getTime() - 5 * 86400_000);
    const old = new Date(today.getTime() - 40 * 86400_000);
    mr = makeStudy({ series: 1, instancesPerSeries: 2, patientName: 'SMITH^JOHN', patientId: 'PID-200', accession: 'ACC-MR-2',
      studyDescription: 'MR KNEE', modality: 'MR', studyDate: da(weekAgo) });
    const older = makeStudy({ series: 1, instancesPerSeries: 1, patientName: 'OLD^ANNA', patientId: 'PID-300', studyDate: da(old), modality: 'CR' });
    await storescu(ui.appliance, [...mr, ...older]);
    await row(mr[0]!.studyUid).waitFor();
    await row(older[0]!.studyUid).waitFor();
    assert.equal(await page.locator('.row.study:not([hidden])').count(), 3);

    const visible = async () => (await page.locator('.row.study:not([hidden]) .c-name').allInnerTexts()).sort();
    const showing = (names: string[]) => page.waitForFunction((want) =>
      JSON.stringify([...document.querySelectorAll('.row.study:not([hidden]) .c-name')].map((c) => c.textContent).sort()) === JSON.stringify(want), names);
    await page.fill('.search', 'smith');
    await showing(['SMITH, JOHN']);
    assert.deepEqual(await visible(), ['SMITH, JOHN']);
    await page.fill('.search', 'ACC-CT');
    await showing(['DOE, JANE']);
    assert.deepEqual(await visible(), ['DOE, JANE']);
    await page.fill('.search', '');
    await showing(['DOE, JANE', 'OLD, ANNA', 'SMITH, JOHN']);

    await page.click('button.seg[data-range="today"]');
    await showing(['DOE, JANE']);
    assert.deepEqual(await visible(), ['DOE, JANE']);
    await page.click('button.seg[data-range="7d"]');
    await showing(['DOE, JANE', 'SMITH, JOHN']);
    assert.deepEqual(await visible(), ['DOE, JANE', 'SMITH, JOHN']);
    await page.click('button.seg[data-range="all"]');

    await showing(['DOE, JANE', 'OLD, ANNA', 'SMITH, JOHN']);
    await page.selectOption('select[aria-label="Modality"]', 'MR');
    await showing(['SMITH, JOHN']);
    assert.deepEqual(await visible(), ['SMITH, JOHN']);
    await page.selectOption('select[aria-label="Modality"]', '');
    await showing(['DOE, JANE', 'OLD, ANNA', 'SMITH, JOHN']);

    await page.click('button.cell[data-sort="patientName"]');
    const names = await page.evaluate(() => [...document.querySelectorAll<HTMLElement>('.row.study:not([hidden])')]
      .sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top).map((r) => r.children[0]!.textContent));
    assert.deepEqual(names, ['DOE, JANE', 'OLD, ANNA', 'SMITH, JOHN']);
    await screenshot(page, 'studies');
  });

  it('opens a study with series thumbnails and per-instance state', async () => {
    const { page } = ui;
    await row(ct[0]!.studyUid).click();
    await page.waitForSelector('.series-card');
    assert.equal(await page.locator('.series-card').count(), 2);
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('img.thumb')].every((img) => img.complete && img.naturalWidth > 0));
    await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-sop]').length === 12);
    assert.match(await page.locator('.study-title h1').innerText(), /DOE, JANE/);
    await screenshot(page, 'study');
  });

  it('the viewer draws the image, window/level changes pixels and scrolling changes the slice', async () => {
    const { page } = ui;
    await page.locator('.series-card').first().click();
    await page.waitForFunction(() => document.querySelector('.viewer')?.getAttribute('data-index') === '0');
    const first = await canvasStats(page);
    assert.ok(first.total > 0 && first.nonBlack > first.total * 0.05, `canvas is blank: ${JSON.stringify(first)}`);
    assert.match(await page.locator('.ov.tl').innerText(), /DOE, JANE/);
    assert.match(await page.locator('.ov.bl').innerText(), /Im 1 \/ 6/);
    // What a technician sees on opening the series: the default window, before any drag.
    await screenshot(page, 'viewer');

    const box = (await page.locator('.viewport').boundingBox())!;
    const wlBefore = await page.locator('.ov.br').innerText();
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width / 2 + 120, box.y + box.height / 2 + 80, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction((before) => document.querySelector('.ov.br')?.textContent !== before, wlBefore);
    const windowed = await canvasStats(page);
    assert.notEqual(windowed.sum, first.sum, 'window/level did not change the pixels');
    await screenshot(page, 'viewer-windowed');

    await page.mouse.wheel(0, 120);
    await page.waitForFunction(() => document.querySelector('.viewer')?.getAttribute('data-index') === '1');
    assert.match(await page.locator('.ov.bl').innerText(), /Im 2 \/ 6/);
    const second = await canvasStats(page);
    assert.notEqual(second.sum, windowed.sum, 'scrolling did not change the image');
    await page.keyboard.press('End');
    await page.waitForFunction(() => document.querySelector('.viewer')?.getAttribute('data-index') === '5');
    assert.equal(await page.locator('.slice-slider').inputValue(), '5');
    await page.selectOption('select[aria-label="Window preset"]', '1500,-600');
    await page.waitForFunction(() => /W 1500 L -600/.test(document.querySelector('.ov.br')?.textContent ?? ''));
    await screenshot(page, 'viewer-lung-preset');
    const csp = ui.pageErrors.filter((e) => /Content Security Policy|Refused/.test(e));
    assert.deepEqual(csp, []);
  });

  it('sync goes from pending to done against the Azure double; a failure shows its reason and retry works', async () => {
    const { page, appliance } = ui;
    await azure.setFault({ kind: 'status', status: 503, retryAfter: 1 });
    const settings = await (await appliance.api('/api/settings')).json() as Record<string, any>;
    settings.destinations = [{ name: 'azure', baseUrl: azure.baseUrl, auth: { kind: 'none' }, ...fast }];
    const put = await appliance.api('/api/settings', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) });
    assert.equal(put.status, 200, await put.text());

    await page.goto(`${appliance.baseUrl}/#/studies`);
    await page.waitForFunction((uid) => /pending|uploading/.test(document.querySelector(`.row.study[data-uid="${uid}"] .pill`)?.textContent ?? ''), ct[0]!.studyUid, { timeout: 30_000 });
    await screenshot(page, 'studies-pending');
    await azure.clearFault();
    await page.waitForFunction((uid) => document.querySelector(`.row.study[data-uid="${uid}"] .pill`)?.textContent === 'done', ct[0]!.studyUid, { timeout: 60_000 });
    assert.equal(azure.storedInstances().filter((i) => i.studyUid === ct[0]!.studyUid).length, 12);

    const bad = makeStudy({ series: 1, instancesPerSeries: 3, patientName: 'FAIL^FRED', patientId: 'PID-400', studyDate: da(today) });
    await azure.setFault({ kind: 'reject-instance', sopUids: [bad[1]!.sopInstanceUid], reason: 43264 });
    await storescu(appliance, bad);
    await page.waitForFunction((uid) => /failed/.test(document.querySelector(`.row.study[data-uid="${uid}"] .pill`)?.textContent ?? ''), bad[0]!.studyUid, { timeout: 60_000 });

    // The study view shows each instance's own state: one failed with its reason, the others delivered.
    await page.evaluate((uid) => { location.hash = `#/study/${uid}`; }, bad[0]!.studyUid);
    await page.waitForFunction(() => document.querySelectorAll('tbody tr[data-sop]').length === 3);
    const instanceRow = (sop: string) => page.locator(`tbody tr[data-sop="${sop}"]`);
    await page.waitForFunction((sop) => document.querySelector(`tbody tr[data-sop="${sop}"]`)?.getAttribute('data-state') === 'failed', bad[1]!.sopInstanceUid, { timeout: 30_000 });
    assert.match(await instanceRow(bad[1]!.sopInstanceUid).locator('.reason').innerText(), /43264|valid/i);
    for (const other of [bad[0]!, bad[2]!]) {
      await page.waitForFunction((sop) => document.querySelector(`tbody tr[data-sop="${sop}"]`)?.getAttribute('data-state') === 'delivered', other.sopInstanceUid, { timeout: 30_000 });
      assert.equal(await instanceRow(other.sopInstanceUid).locator('.pill[data-destination="azure"]').innerText(), 'delivered');
    }
    await screenshot(page, 'study-instance-states');

    await page.click('a.nav-item[data-route="sync"]');
    const failure = page.locator(`tr[data-sop="${bad[1]!.sopInstanceUid}"]`);
    await failure.waitFor({ timeout: 15_000 });
    assert.match(await failure.locator('.reason').innerText(), /43264|valid/i);
    await page.waitForSelector('.dest-card[data-destination="azure"]');
    await screenshot(page, 'sync');

    await azure.clearFault();
    await failure.locator('button', { hasText: 'Retry' }).click();
    await failure.waitFor({ state: 'detached', timeout: 30_000 });
    await page.click('a.nav-item[data-route="studies"]');
    await page.waitForFunction((uid) => document.querySelector(`.row.study[data-uid="${uid}"] .pill`)?.textContent === 'done', bad[0]!.studyUid, { timeout: 60_000 });
    assert.equal(azure.storedInstances().filter((i) => i.studyUid === bad[0]!.studyUid).length, 3);
  });

  it('settings show a validation message next to each bad field', async () => {
    const { page, appliance } = ui;
    await page.click('a.nav-item[data-route="settings"]');
    await page.waitForSelector('.settings[data-loaded="true"]');
    await page.fill('[data-path="aeTitle"]', 'THIS_AE_TITLE_IS_TOO_LONG');
    await page.fill('[data-path="dimse.port"]', '70000');
    await page.fill('[data-path="destinations.0.baseUrl"]', 'not a url');
    await page.click('button:has-text("+ Add peer")');
    await page.click('button:has-text("Save settings")');
    const error = (path: string) => page.locator(`[data-error-for="${path}"]`);
    await error('aeTitle').waitFor();
    assert.match(await error('aeTitle').innerText(), /1 to 16 printable ASCII/);
    assert.match(await error('dimse.port').innerText(), /1 to 65535/);
    assert.match(await error('destinations.0.baseUrl').innerText(), /URL/);
    assert.match(await error('peers.0.aeTitle').innerText(), /1 to 16/);
    assert.match(await error('peers.0.host').innerText(), /required/);
    await screenshot(page, 'settings-validation');
    // Nothing was written.
    const stored = await (await appliance.api('/api/settings')).json() as { aeTitle: string };
    assert.equal(stored.aeTitle, 'DICOMEDGE');

    // The server's own validation is shown the same way (here: a rule the form does not check itself).
    await page.fill('[data-path="aeTitle"]', 'EDGE1');
    await page.fill('[data-path="dimse.port"]', '11112');
    await page.fill('[data-path="destinations.0.baseUrl"]', azure.baseUrl);
    await page.fill('[data-path="peers.0.aeTitle"]', 'WORKSTATION');
    await page.fill('[data-path="peers.0.host"]', '127.0.0.1');
    await page.fill('[data-path="storage.minFreeBytes"]', '0.5');
    await page.click('button:has-text("Save settings")');
    await page.waitForSelector('.save-status.ok');
    const saved = await (await appliance.api('/api/settings')).json() as { aeTitle: string; peers: { aeTitle: string }[] };
    assert.equal(saved.aeTitle, 'EDGE1');
    assert.equal(saved.peers[0]!.aeTitle, 'WORKSTATION');
    await screenshot(page, 'settings');
  });

  it('settings → Network: a proxy URL carrying a password is refused at the field; a proxy saved keeps its password masked', async () => {
    const { page, appliance } = ui;
    await page.click('a.nav-item[data-route="settings"]');
    await page.waitForSelector('.settings[data-loaded="true"]');
    await page.fill('[data-path="network.proxy.url"]', 'http://edge:secret@proxy.clinic.lan:3128');
    await page.click('button:has-text("Save settings")');
    const error = page.locator('[data-error-for="network.proxy.url"]');
    await error.waitFor();
    assert.match(await error.innerText(), /must not carry a user name or password/);

    await page.fill('[data-path="network.proxy.url"]', 'http://proxy.clinic.lan:3128');
    await page.fill('[data-path="network.proxy.user"]', 'edge');
    await page.fill('[data-path="network.proxy.password"]', 'proxy-secret');
    await page.fill('[data-path="network.proxy.noProxy"]', '127.0.0.1,localhost');
    await page.click('button:has-text("Save settings")');
    await page.waitForSelector('.save-status.ok');
    const saved = await (await appliance.api('/api/settings')).json() as { network: { proxy: { url: string; user: string; password: string } } };
    assert.equal(saved.network.proxy.url, 'http://proxy.clinic.lan:3128');
    assert.equal(saved.network.proxy.user, 'edge');
    assert.notEqual(saved.network.proxy.password, 'proxy-secret', 'masked by /api');
    await screenshot(page, 'settings-network');

    // Back to no proxy, so the tests after this one reach the Azure double directly.
    for (const path of ['url', 'user', 'password', 'noProxy']) await page.fill(`[data-path="network.proxy.${path}"]`, '');
    await page.click('button:has-text("Save settings")');
    await page.waitForSelector('.save-status.ok');
  });

  it('the C-ECHO test button reaches a real storescp and shows success, and a closed port shows why', async () => {
    const { page } = ui;
    const dir = await mkdtemp(join(tmpdir(), 'ui-echo-'));
    const storescp = await startStorescp({ dir, aet: 'WORKSTATION' });
    try {
      const peerRow = page.locator('.peer-row[data-index="0"]');
      await page.fill('[data-path="peers.0.port"]', String(storescp.port));
      await peerRow.locator('button', { hasText: 'C-ECHO test' }).click();
      await peerRow.locator('.echo-result.ok').waitFor();
      assert.match(await peerRow.locator('.echo-result').innerText(), /C-ECHO OK \(\d+ ms\)/);
      await screenshot(page, 'settings-echo');
      await page.fill('[data-path="peers.0.port"]', String(await freePort()));
      await peerRow.locator('button', { hasText: 'C-ECHO test' }).click();
      await peerRow.locator('.echo-result.bad').waitFor();
      assert.match(await peerRow.locator('.echo-result').innerText(), /connection refused/);
    } finally {
      await storescp.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
