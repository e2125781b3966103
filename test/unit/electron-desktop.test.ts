// The desktop shell's OS details: the Windows AppUserModelId, the Linux autostart entry, refusing safeStorage's
// weak basic_text backend, and holding off suspension while a modality sends or uploads run.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { APP_ID } from '../../main/electron/app-identity.js';
import { autostartCommand, autostartEntry, autostartFile, linuxAutostartEnabled, setLinuxAutostart } from '../../main/electron/linux-autostart.js';
import { safeStorageSecretBox, type SafeStorageLike } from '../../main/electron/safe-storage-box.js';
import { findAssociationCounter, SuspensionGuard, type PowerSaveBlockerLike } from '../../main/electron/suspension-guard.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dicom-edge-desktop-'));
});
after(async () => rm(dir, { recursive: true, force: true }));

describe('app identity', () => {
  it('the AppUserModelId is the installer\'s appId', () => {
    const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): { appId: string } };
    assert.equal(APP_ID, yaml.load(readFileSync('electron-builder.yml', 'utf8')).appId);
  });
});

describe('Linux autostart', () => {
  it('lives in $XDG_CONFIG_HOME/autostart, else ~/.config/autostart', () => {
    assert.equal(autostartFile({ XDG_CONFIG_HOME: '/x/config' }), '/x/config/autostart/dicom-edge.desktop');
    assert.match(autostartFile({}), /\/\.config\/autostart\/dicom-edge\.desktop$/);
  });

  it('starts the AppImage when running from one, else the binary', () => {
    assert.equal(autostartCommand('/tmp/.mount_x/dicom-edge', { APPIMAGE: '/home/u/DICOM Edge.AppImage' }), '/home/u/DICOM Edge.AppImage');
    assert.equal(autostartCommand('/opt/DICOM Edge/dicom-edge', {}), '/opt/DICOM Edge/dicom-edge');
  });

  it('quotes the command as the Desktop Entry Specification asks', () => {
    assert.match(autostartEntry('/opt/dicom-edge/dicom-edge'), /^Exec=\/opt\/dicom-edge\/dicom-edge$/m);
    assert.match(autostartEntry('/home/u/My "Edge" $1/app'), /^Exec="\/home\/u\/My \\"Edge\\" \\\$1\/app"$/m);
    assert.match(autostartEntry('/x'), /^\[Desktop Entry\]\nType=Application\n/);
  });

  it('is written when turned on and removed when turned off', async () => {
    const file = autostartFile({ XDG_CONFIG_HOME: join(dir, 'config') });
    setLinuxAutostart(true, { file, command: '/opt/DICOM Edge/dicom-edge' });
    assert.equal(linuxAutostartEnabled(file), true);
    assert.match(await readFile(file, 'utf8'), /^Exec="\/opt\/DICOM Edge\/dicom-edge"$/m);
    assert.deepEqual(await readdir(join(dir, 'config', 'autostart')), ['dicom-edge.desktop'], 'no temp file left');
    setLinuxAutostart(false, { file, command: 'unused' });
    assert.equal(linuxAutostartEnabled(file), false);
    setLinuxAutostart(false, { file, command: 'unused' }); // off twice is fine
  });
});

describe('safeStorage for the secret key', () => {
  const fakeSafeStorage = (backend: string, available = true): SafeStorageLike => ({
    isEncryptionAvailable: () => available,
    getSelectedStorageBackend: () => backend,
    encryptString: (plain) => Buffer.from(`sealed:${plain}`),
    decryptString: (sealed) => sealed.toString().replace(/^sealed:/, ''),
  });

  it('on Linux with only basic_text: no box, a reason that says so, and no key file made', async () => {
    const data = await mkdtemp(join(dir, 'basic-'));
    const choice = safeStorageSecretBox(fakeSafeStorage('basic_text'), data, 'linux');
    assert.equal(choice.box, undefined);
    assert.match(choice.reason ?? '', /basic_text/);
    assert.equal(existsSync(join(data, 'secret.key.safe')), false);
  });

  it('with a keyring (libsecret, KWallet) or on another OS: the box', async () => {
    for (const [backend, platform] of [['gnome_libsecret', 'linux'], ['kwallet5', 'linux'], ['basic_text', 'win32']] as const) {
      const data = await mkdtemp(join(dir, 'keyring-'));
      const choice = safeStorageSecretBox(fakeSafeStorage(backend), data, platform);
      assert.ok(choice.box, `${backend} on ${platform}`);
      assert.equal(choice.reason, undefined);
      assert.ok(existsSync(join(data, 'secret.key.safe')));
    }
  });

  it('a key already sealed under basic_text is kept, so stored secrets still open, with a warning', async () => {
    const data = await mkdtemp(join(dir, 'kept-'));
    await writeFile(join(data, 'secret.key.safe'), `sealed:${Buffer.alloc(32, 7).toString('base64')}`);
    const choice = safeStorageSecretBox(fakeSafeStorage('basic_text'), data, 'linux');
    assert.ok(choice.box);
    assert.match(choice.warning ?? '', /basic_text.*kept/);
  });

  it('no encryption at all: no box, and why', async () => {
    const choice = safeStorageSecretBox(fakeSafeStorage('unknown', false), await mkdtemp(join(dir, 'none-')), 'linux');
    assert.equal(choice.box, undefined);
    assert.match(choice.reason ?? '', /no encryption/);
  });
});

describe('suspension while busy', () => {
  function fakeBlocker() {
    const live = new Set<number>();
    let next = 1;
    const blocker: PowerSaveBlockerLike & { live: Set<number>; types: string[] } = {
      live, types: [],
      start(type) {
        blocker.types.push(type);
        live.add(next);
        return next++;
      },
      stop(id) {
        assert.ok(live.delete(id), `stop of a blocker that is not running (${id})`);
      },
    };
    return blocker;
  }

  it('holds one prevent-app-suspension blocker while an association is open or uploads run, none when idle', () => {
    const blocker = fakeBlocker();
    const changes: boolean[] = [];
    const guard = new SuspensionGuard(blocker, (holding) => changes.push(holding));
    guard.update({ openAssociations: 0, sending: 0 });
    assert.equal(blocker.live.size, 0);
    guard.update({ openAssociations: 1, sending: 0 });
    guard.update({ openAssociations: 2, sending: 5 });
    guard.update({ openAssociations: 0, sending: 5 });
    assert.equal(blocker.live.size, 1, 'one blocker however busy');
    assert.deepEqual(blocker.types, ['prevent-app-suspension']);
    guard.update({ openAssociations: 0, sending: 0 });
    assert.equal(blocker.live.size, 0);
    assert.equal(guard.holding, false);
    assert.deepEqual(changes, [true, false]);
    guard.update({ openAssociations: 0, sending: 1 });
    guard.release();
    assert.equal(blocker.live.size, 0, 'released at quit');
  });

  it('finds the service that counts open associations', () => {
    const dimse = { name: 'dimse', openAssociations: 3 };
    assert.equal(findAssociationCounter([{ name: 'web' }, dimse]), dimse);
    assert.equal(findAssociationCounter([{ name: 'web' }]), undefined);
  });
});
