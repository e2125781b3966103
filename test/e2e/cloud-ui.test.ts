// The app with the clinic's archive (Orthanc with its DICOMweb plugin) in Chromium: a study only in the archive is
// listed as "cloud" once the search includes the archive, opens in the viewer while its images are fetched,
// Retrieve makes it local, and Cloud sync lists the prefetch jobs. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { buildRenderer, canvasStats, screenshot, startUiSession, storescu, type UiSession } from './ui-harness.js';

describe('the app with a cloud archive, in Chromium', { timeout: 240_000 }, () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let ui: UiSession;
  let prior: GeneratedInstance[];
  /** Older studies of the same patient: one to retrieve, one left in the archive for the prefetch to fetch. */
  let older: GeneratedInstance[];
  let oldest: GeneratedInstance[];

  before(async () => {
    buildRenderer();
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-ui-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    ui = await startUiSession({
      appliance: { settings: {
        destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, archive: true, retryBaseMs: 50, retryCapMs: 500 }],
        cloud: { prefetch: { rules: [{ maxStudies: 3, maxAgeDays: 36_500 }] } },
      } },
    });
    prior = makeStudy({ series: 1, instancesPerSeries: 4, patientId: 'PRIOR-1', patientName: 'CLOUD^ONLY', studyDate: '20200202', studyDescription: 'CT PRIOR', rows: 64, columns: 64 });
    older = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'PRIOR-1', patientName: 'CLOUD^ONLY', studyDate: '20180101', studyDescription: 'CT OLDER', rows: 32, columns: 32 });
    oldest = makeStudy({ series: 1, instancesPerSeries: 2, patientId: 'PRIOR-1', patientName: 'CLOUD^ONLY', studyDate: '20160101', studyDescription: 'CT OLDEST', rows: 32, columns: 32 });
    for (const instance of [...prior, ...older, ...oldest]) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
  });
  after(async () => {
    await ui?.stop();
    await orthanc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const row = () => ui.page.locator(`.row.study[data-uid="${prior[0]!.studyUid}"]`);

  it('lists a study only in the archive as "cloud" when the search includes the archive, and not otherwise', async () => {
    const { page } = ui;
    await page.waitForFunction(() => document.body.dataset.studiesLoaded === 'true');
    assert.equal(await row().count(), 0, 'the index alone does not know the archive\'s study');
    await page.getByLabel('Include cloud archive').check();
    await row().waitFor();
    await ui.page.locator(`.row.study[data-uid="${older[0]!.studyUid}"]`).waitFor();
    await page.waitForFunction((uid) => document.querySelector(`.row.study[data-uid="${uid}"]`)?.getAttribute('data-location') === 'cloud', prior[0]!.studyUid);
    assert.match(await row().innerText(), /CLOUD, ONLY[\s\S]*PRIOR-1[\s\S]*CT PRIOR[\s\S]*cloud/);
    await screenshot(page, 'cloud-study-list');
  });

  it('opens the cloud-only study in the viewer: the images are fetched as they are shown', async () => {
    const { page } = ui;
    await row().click();
    await page.waitForFunction(() => document.querySelector('#study-location')?.getAttribute('data-location') === 'cloud');
    assert.equal(await page.locator('button', { hasText: 'Retrieve' }).isVisible(), true);
    await page.locator('.series-card').first().click();
    await page.waitForFunction(() => document.querySelector('.viewer')?.getAttribute('data-index') === '0');
    await page.waitForFunction(() => {
      const canvas = document.querySelector<HTMLCanvasElement>('.viewer canvas');
      return canvas !== null && canvas.width > 0;
    });
    const stats = await canvasStats(page);
    assert.ok(stats.total > 0 && stats.nonBlack > stats.total * 0.05, `canvas is blank: ${JSON.stringify(stats)}`);
    assert.match(await page.locator('.ov.tl').innerText(), /CLOUD, ONLY/);
    await screenshot(page, 'cloud-viewer');
  });

  it('Retrieve makes a cloud-only study local, and Keep local pins it', async () => {
    const { page } = ui;
    const studyUid = older[0]!.studyUid;
    await page.goto(`${ui.appliance.baseUrl}/#/study/${studyUid}`);
    const retrieve = page.locator('button', { hasText: 'Retrieve' });
    await retrieve.waitFor();
    assert.equal(await page.locator('#study-location').getAttribute('data-location'), 'cloud');
    assert.match(await page.locator('#study-location').innerText(), /cloud · 0\/2 here/);
    const imageStates = () => page.locator('tr[data-sop]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.state));
    await page.waitForFunction(() => document.querySelectorAll('tr[data-sop]').length === 2);
    // The series thumbnails may already have fetched an image: each is in the cloud, here or not.
    for (const state of await imageStates()) assert.ok(state === 'cloud only' || state === 'local + cloud', `image state ${state}`);
    await retrieve.click();
    await page.waitForFunction(() => document.querySelector('#study-location')?.getAttribute('data-location') === 'both'
      && document.querySelector('#study-location')?.textContent === 'local + cloud', undefined, { timeout: 60_000 });
    const sync = (await (await ui.appliance.api(`/api/sync?study=${studyUid}`)).json()) as Array<{ location: string; numLocalInstances: number; numInstances: number }>;
    assert.deepEqual([sync[0]!.location, sync[0]!.numLocalInstances, sync[0]!.numInstances], ['both', 2, 2]);
    assert.equal(await retrieve.isVisible(), false, 'nothing left to retrieve');
    // Images fetched from the archive are here and in the cloud (never queued, so no upload state): not "local only".
    await page.waitForFunction(() => [...document.querySelectorAll<HTMLElement>('tr[data-sop]')].map((r) => r.dataset.state).join() === 'local + cloud,local + cloud',
      undefined, { timeout: 30_000 });
    assert.deepEqual(await page.locator('tr[data-sop] .where').allInnerTexts(), ['local + cloud', 'local + cloud']);
    const detail = (await (await ui.appliance.api(`/api/studies/${studyUid}/sync`)).json()) as { instances: { items: Array<{ location: string; destinations: unknown[] }> } };
    assert.deepEqual(detail.instances.items.map((i) => [i.location, i.destinations.length]), [['both', 0], ['both', 0]]);
    await page.getByLabel('Keep local').check();
    await page.waitForFunction(() => (document.querySelector('input[aria-label="Keep local"]') as HTMLInputElement | null)?.checked === true);
    await page.waitForFunction(() => !document.querySelector('.toast'), undefined, { timeout: 10_000 }).catch(() => undefined);
    assert.equal(ui.appliance.appliance.archive.cloud.studyLocation(studyUid)?.pinned, true);
    await screenshot(page, 'cloud-study-retrieved');

    await page.goto(`${ui.appliance.baseUrl}/#/studies`);
    await page.waitForFunction((uid) => document.querySelector(`.row.study[data-uid="${uid}"]`)?.getAttribute('data-location') === 'both', studyUid);
  });

  it('Cloud sync lists the prefetch jobs with their state', async () => {
    const { page } = ui;
    // A new study of the patient arrives: its priors in the archive are prefetched.
    const current = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'PRIOR-1', patientName: 'CLOUD^ONLY', studyDescription: 'CT TODAY', rows: 32, columns: 32 });
    await storescu(ui.appliance, current);
    await page.goto(`${ui.appliance.baseUrl}/#/sync`);
    await page.locator(`.prefetch-list tr[data-study="${oldest[0]!.studyUid}"]`).waitFor({ timeout: 60_000 });
    await page.waitForFunction((uid) => document.querySelector(`.prefetch-list tr[data-study="${uid}"]`)?.getAttribute('data-state') === 'done',
      oldest[0]!.studyUid, { timeout: 60_000 });
    assert.match(await page.locator(`.prefetch-list tr[data-study="${oldest[0]!.studyUid}"]`).innerText(), /done[\s\S]*CLOUD, ONLY[\s\S]*CT OLDEST[\s\S]*2 images/);
    assert.match(await page.locator('.prefetch-counts').innerText(), /\d+ done/);
    await screenshot(page, 'cloud-prefetch');
    assert.deepEqual(ui.pageErrors, []);
  });
});
