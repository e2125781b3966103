import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SettingsFile } from '../../main/core/settings/settings-file.js';
import { SettingsError } from '../../main/core/settings/errors.js';
import { applyOverrides } from '../../main/core/appliance.js';

describe('settings file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-settings-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('an empty data dir gets working defaults, written to settings.json', async () => {
    const sub = join(dir, 'fresh');
    const { settings } = await SettingsFile.open(sub);
    assert.equal(settings.aeTitle, 'DICOMEDGE');
    assert.equal(settings.dimse.port, 11112);
    assert.equal(settings.http.host, '127.0.0.1');
    assert.equal(settings.http.port, 8780);
    assert.deepEqual(settings.destinations, []);
    const onDisk = JSON.parse(await readFile(join(sub, 'settings.json'), 'utf8'));
    assert.equal(onDisk.aeTitle, 'DICOMEDGE');
  });

  const invalidCases: Array<[string, unknown, RegExp]> = [
    ['a port out of range', { dimse: { port: 70000 } }, /field "dimse\.port" has value 70000: .*65535/],
    ['an AE title too long', { aeTitle: 'THIS_AE_TITLE_IS_TOO_LONG' }, /field "aeTitle" has value "THIS_AE_TITLE_IS_TOO_LONG": must be 1 to 16/],
    ['a wrong type', { storage: { minFreeBytes: 'lots' } }, /field "storage\.minFreeBytes" has value "lots": .*number/],
    ['an unknown auth kind', { destinations: [{ name: 'cloud', baseUrl: 'https://x.example/v2', auth: { kind: 'magic' } }] }, /field "destinations\.0\.auth\.kind" has value "magic"/],
  ];
  for (const [label, content, pattern] of invalidCases) {
    test(`${label} stops the start, names the field, and leaves the file untouched`, async () => {
      const sub = await mkdtemp(join(dir, 'bad-'));
      const text = JSON.stringify(content, null, 2);
      await writeFile(join(sub, 'settings.json'), text);
      await assert.rejects(SettingsFile.open(sub), (error: Error) => {
        assert.ok(error instanceof SettingsError);
        assert.match(error.message, pattern);
        assert.match(error.message, /settings\.json/);
        return true;
      });
      assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), text);
    });
  }

  test('a file that is not JSON is named and untouched', async () => {
    const sub = await mkdtemp(join(dir, 'json-'));
    await writeFile(join(sub, 'settings.json'), '{ "aeTitle": ');
    await assert.rejects(SettingsFile.open(sub), /not valid JSON/);
    assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), '{ "aeTitle": ');
  });

  test('writes are validated and a bad write changes nothing', async () => {
    const sub = await mkdtemp(join(dir, 'write-'));
    const { file, settings } = await SettingsFile.open(sub);
    const before = await readFile(join(sub, 'settings.json'), 'utf8');
    await assert.rejects(file.write({ ...settings, dimse: { ...settings.dimse, maxAssociations: 0 } }), /dimse\.maxAssociations/);
    assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), before);
    await file.write({ ...settings, aeTitle: 'EDGE2' });
    assert.equal(JSON.parse(await readFile(join(sub, 'settings.json'), 'utf8')).aeTitle, 'EDGE2');
  });

  test('flags override settings, settings override defaults', async () => {
    const sub = await mkdtemp(join(dir, 'override-'));
    await writeFile(join(sub, 'settings.json'), JSON.stringify({ aeTitle: 'FROMFILE', http: { port: 9001 } }));
    const { settings } = await SettingsFile.open(sub);
    assert.equal(settings.aeTitle, 'FROMFILE');
    assert.equal(settings.http.port, 9001);
    assert.equal(settings.dimse.port, 11112);
    const merged = applyOverrides(settings, { aeTitle: 'FROMFLAG', dimsePort: 4242 });
    assert.equal(merged.aeTitle, 'FROMFLAG');
    assert.equal(merged.dimse.port, 4242);
    assert.equal(merged.http.port, 9001);
  });
});
