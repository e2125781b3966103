import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileSecretBox, openAuthSecrets, sealSettingsSecrets, SECRET_KEY_FILE } from '../../main/core/forward/secrets.js';
import { settingsSchema } from '../../main/core/contract/settings.js';

describe('forward secrets at rest', () => {
  let dir = '';
  after(() => rm(dir, { recursive: true, force: true }));

  it('seals plain-text secrets with a 0600 key file and opens them again', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fwd-secret-'));
    const box = fileSecretBox(dir);
    assert.equal((await stat(join(dir, SECRET_KEY_FILE))).mode & 0o777, 0o600);
    const settings = settingsSchema.parse({
      destinations: [
        { name: 'cloud', baseUrl: 'https://ws-dicom.dicom.azurehealthcareapis.com/v2',
          auth: { kind: 'entra-client-secret', tenantId: 't', clientId: 'c', clientSecret: 'hunter2' } },
        { name: 'basic', baseUrl: 'http://127.0.0.1:1/dicom-web', auth: { kind: 'basic', user: 'u', password: 'pw' } },
        { name: 'open', baseUrl: 'http://127.0.0.1:2/dicom-web' },
      ],
    });
    const sealed = sealSettingsSecrets(settings, box);
    assert.equal(sealed.changed, true);
    const text = JSON.stringify(sealed.settings);
    assert.ok(!text.includes('hunter2') && !text.includes('"pw"'), 'no plain secret left');
    assert.ok(settingsSchema.safeParse(sealed.settings).success, 'sealed settings still validate');
    assert.equal(sealSettingsSecrets(sealed.settings, box).changed, false, 'sealing twice changes nothing');
    const again = fileSecretBox(dir); // same key from the file
    const opened = openAuthSecrets(sealed.settings.destinations[0]!.auth, again);
    assert.equal((opened as { clientSecret: string }).clientSecret, 'hunter2');
    assert.equal((openAuthSecrets(sealed.settings.destinations[1]!.auth, again) as { password: string }).password, 'pw');
  });

  it('refuses a tampered secret', async () => {
    const box = fileSecretBox(dir);
    const sealed = box.seal('s3cret');
    const tampered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    assert.throws(() => box.open(tampered), /cannot be opened/);
  });
});
