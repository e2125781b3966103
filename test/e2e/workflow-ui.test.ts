// The clinic workflow screens in Chromium: a technician schedules, edits and cancels worklist items on the
// Worklist screen (and DCMTK findscu -W, the modality, sees what is scheduled), and Cloud sync lists the
// Storage Commitment requests still open per modality. Screenshots go to test-artifacts/.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { askForCommitment } from '../support/commitment-scu.js';
import { parseFindOutput } from '../support/dcmtk-output.js';
import { requireTool, run } from '../support/peers.js';
import { newUid } from '../support/uid.js';
import { buildRenderer, screenshot, startUiSession, type UiSession } from './ui-harness.js';

describe('the workflow screens, in Chromium', { timeout: 180_000 }, () => {
  let ui: UiSession;

  before(async () => {
    buildRenderer();
    ui = await startUiSession();
  });
  after(async () => ui?.stop());

  async function worklistAccessions(): Promise<string[]> {
    const result = await run(requireTool('findscu', 'dcmtk'), ['-v', '-W', '-aet', 'CT1', '-aec', 'DICOMEDGE', '-k', 'AccessionNumber',
      '-k', 'ScheduledProcedureStepSequence[0].Modality', '127.0.0.1', String(ui.appliance.dimsePort)], { timeoutMs: 30_000 });
    return parseFindOutput(result.stderr + result.stdout).responses.map((r) => `${r.AccessionNumber}:${r.Modality}`);
  }

  it('schedules an item from the form, edits it, cancels it; the modality sees each step', async () => {
    const { page } = ui;
    await page.goto(`${ui.appliance.baseUrl}/#/worklist`);
    await page.locator('form.worklist-form').waitFor();
    await page.fill('#wl-patientName', 'DOE^JOHN');
    await page.fill('#wl-patientId', 'P-UI-1');
    await page.fill('#wl-accessionNumber', 'ACC-UI-1');
    await page.fill('#wl-modality', 'ct');
    await page.fill('#wl-scheduledStationAeTitle', 'CT1');
    await page.fill('#wl-scheduledStartDate', '2026-01-15');
    await page.fill('#wl-scheduledStartTime', '08:30');
    await page.click('form.worklist-form button[type=submit]');
    const row = page.locator('tr[data-accession="ACC-UI-1"]');
    await row.waitFor();
    assert.equal(await row.getAttribute('data-state'), 'SCHEDULED');
    assert.match(await row.innerText(), /DOE, JOHN[\s\S]*P-UI-1[\s\S]*ACC-UI-1[\s\S]*CT/);
    assert.deepEqual(await worklistAccessions(), ['ACC-UI-1:CT']);
    await screenshot(page, 'worklist-scheduled');

    await row.getByRole('button', { name: 'Edit' }).click();
    assert.equal(await page.inputValue('#wl-scheduledStartDate'), '2026-01-15');
    await page.fill('#wl-modality', 'MR');
    await page.click('form.worklist-form button[type=submit]');
    await page.waitForFunction(() => /MR/.test(document.querySelector('tr[data-accession="ACC-UI-1"]')?.textContent ?? ''));
    assert.deepEqual(await worklistAccessions(), ['ACC-UI-1:MR']);

    await row.getByRole('button', { name: 'Cancel' }).click();
    await page.waitForFunction(() => document.querySelector('tr[data-accession="ACC-UI-1"]')?.getAttribute('data-state') === 'CANCELED');
    assert.deepEqual(await worklistAccessions(), [], 'a cancelled item is no longer offered');
    assert.deepEqual(ui.pageErrors, []);
  });

  it('a bad value is refused with the field named, and nothing is scheduled', async () => {
    const { page } = ui;
    await page.goto(`${ui.appliance.baseUrl}/#/worklist`);
    await page.locator('form.worklist-form').waitFor();
    await page.fill('#wl-patientName', 'ROE^RICHARD');
    await page.fill('#wl-patientId', 'P-UI-2');
    await page.fill('#wl-modality', 'CT!');
    await page.fill('#wl-scheduledStartDate', '2026-01-16');
    await page.click('form.worklist-form button[type=submit]');
    await page.locator('.toast.error', { hasText: 'modality must be a modality code' }).waitFor();
    assert.equal(await page.locator('tr[data-accession]').count(), 1, 'only the cancelled item of the test before');
  });

  it('a cloud worklist item is marked as such and offers no Edit or Cancel', async () => {
    const { page } = ui;
    const errorsBefore = ui.pageErrors.length;
    // As a refresh of the archive's UPS-RS worklist keeps it (cloud/cloud-worklist.ts).
    ui.appliance.appliance.archive.cloudWorklist.refresh('azure', [{
      workitemUid: newUid(), studyInstanceUid: newUid(), patientName: 'ROE^JANE', patientId: 'P-UI-C', patientBirthDate: '', patientSex: '',
      accessionNumber: 'ACC-UI-C', referringPhysicianName: '', requestedProcedureId: '', requestedProcedureDescription: 'CT HEAD',
      scheduledStationAeTitle: 'CT1', scheduledStartDate: '20260116', scheduledStartTime: '', modality: 'CT', scheduledProcedureStepId: '',
      scheduledProcedureStepDescription: '', scheduledPerformingPhysicianName: '',
    }], Date.now());
    await page.goto(`${ui.appliance.baseUrl}/#/`);
    await page.goto(`${ui.appliance.baseUrl}/#/worklist`);
    const row = page.locator('tr[data-accession="ACC-UI-C"]');
    await row.waitFor();
    assert.match(await row.innerText(), /SCHEDULED[\s\S]*cloud worklist/);
    assert.equal(await row.getByRole('button').count(), 0);
    assert.deepEqual(ui.pageErrors.slice(errorsBefore), []);
  });

  it('Cloud sync lists the storage commitments still open per modality', async () => {
    const { page } = ui;
    const { actionStatus } = await askForCommitment({
      port: ui.appliance.dimsePort, calledAe: 'DICOMEDGE', callingAe: 'MODALITY', transactionUid: newUid(),
      items: [{ sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: newUid() }, { sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: newUid() }],
      waitForReportMs: 0,
    });
    assert.equal(actionStatus, 0);
    await page.goto(`${ui.appliance.baseUrl}/#/sync`);
    const row = page.locator('.panel.commitments tr[data-ae="MODALITY"]');
    await row.waitFor();
    assert.match(await row.innerText(), /MODALITY\s+1\s+2 images/);
    await screenshot(page, 'sync-open-commitments');
  });
});
