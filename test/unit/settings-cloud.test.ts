// The archive destination and the cloud section of the settings: defaults that change nothing, and
// validation errors that name the field.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SettingsError } from '../../main/core/settings/errors.js';
import { archiveDestination, settingsSchema } from '../../main/core/contract/settings.js';
import { SettingsFile } from '../../main/core/settings/settings-file.js';

const destination = (name: string, extra: Record<string, unknown> = {}) => ({ name, baseUrl: `https://${name}.example/v2`, ...extra });

describe('cloud settings', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-settings-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('defaults: no archive destination, federation on with 3 s, no prefetch rules, change feed every minute', () => {
    const settings = settingsSchema.parse({ destinations: [destination('azure')] });
    assert.equal(settings.destinations[0]!.archive, false);
    assert.equal(archiveDestination(settings), undefined);
    assert.deepEqual(settings.cloud, {
      federation: { enabled: true, timeoutMs: 3000 },
      prefetch: { rules: [], concurrency: 1 },
      changeFeed: { enabled: true, pollIntervalMs: 60_000, batchSize: 100 },
      worklist: { enabled: false, stations: [], refreshIntervalMs: 300_000, retryBaseMs: 5_000, retryCapMs: 600_000 },
    });
  });

  test('a prefetch rule gets its defaults: any modality, 3 studies, 5 years', () => {
    const settings = settingsSchema.parse({ cloud: { prefetch: { rules: [{}, { modalities: ['CT', 'MR'], maxStudies: 1 }] } } });
    assert.deepEqual(settings.cloud.prefetch.rules, [
      { modalities: [], maxStudies: 3, maxAgeDays: 1825 },
      { modalities: ['CT', 'MR'], maxStudies: 1, maxAgeDays: 1825 },
    ]);
  });

  test('one destination marked archive is found by archiveDestination', () => {
    const settings = settingsSchema.parse({ destinations: [destination('backup'), destination('azure', { archive: true })] });
    assert.equal(archiveDestination(settings)?.name, 'azure');
  });

  const invalidCases: Array<[string, unknown, RegExp]> = [
    [
      'a second archive destination',
      { destinations: [destination('a', { archive: true }), destination('b'), destination('c', { archive: true })] },
      /field "destinations\.2\.archive" has value true: only one destination can be the archive, and "a" already is/,
    ],
    ['archive not a boolean', { destinations: [destination('a', { archive: 'yes' })] }, /field "destinations\.0\.archive" has value "yes"/],
    ['a federation time limit below 100 ms', { cloud: { federation: { timeoutMs: 5 } } }, /field "cloud\.federation\.timeoutMs" has value 5/],
    ['a change-feed batch over 200', { cloud: { changeFeed: { batchSize: 500 } } }, /field "cloud\.changeFeed\.batchSize" has value 500/],
    ['a poll interval below a second', { cloud: { changeFeed: { pollIntervalMs: 10 } } }, /field "cloud\.changeFeed\.pollIntervalMs" has value 10/],
    ['a prefetch rule with 0 studies', { cloud: { prefetch: { rules: [{ maxStudies: 0 }] } } }, /field "cloud\.prefetch\.rules\.0\.maxStudies" has value 0/],
    ['a prefetch modality that is empty', { cloud: { prefetch: { rules: [{ modalities: [''] }] } } }, /field "cloud\.prefetch\.rules\.0\.modalities\.0" has value ""/],
    ['a cloud worklist without stations', { cloud: { worklist: { enabled: true } } },
      /field "cloud\.worklist\.stations" has value missing: must name at least one station AE title when cloud\.worklist\.enabled is on/],
    ['a worklist station that is no AE title', { cloud: { worklist: { stations: ['CT\\1'] } } }, /field "cloud\.worklist\.stations\.0" has value "CT.*": must be 1 to 16 printable ASCII characters without backslash/],
    ['a worklist refresh interval below a second', { cloud: { worklist: { refreshIntervalMs: 50 } } }, /field "cloud\.worklist\.refreshIntervalMs" has value 50: must be at least 1000/],
    ['a prefetch concurrency of 0', { cloud: { prefetch: { concurrency: 0 } } }, /field "cloud\.prefetch\.concurrency" has value 0/],
  ];
  for (const [label, content, pattern] of invalidCases) {
    test(`${label} stops the start, names the field, and leaves the file untouched`, async () => {
      const sub = await mkdtemp(join(dir, 'bad-'));
      const text = JSON.stringify(content, null, 2);
      await writeFile(join(sub, 'settings.json'), text);
      await assert.rejects(SettingsFile.open(sub), (error: Error) => {
        assert.ok(error instanceof SettingsError, String(error));
        assert.match(error.message, pattern);
        return true;
      });
      assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), text);
    });
  }

  test('a write that marks a second archive is refused and changes nothing', async () => {
    const sub = await mkdtemp(join(dir, 'write-'));
    await writeFile(join(sub, 'settings.json'), JSON.stringify({ destinations: [destination('a', { archive: true }), destination('b')] }));
    const { file, settings } = await SettingsFile.open(sub);
    const before = await readFile(join(sub, 'settings.json'), 'utf8');
    const next = { ...settings, destinations: settings.destinations.map((d) => ({ ...d, archive: true })) };
    await assert.rejects(file.write(next), /destinations\.1\.archive/);
    assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), before);
  });
});
