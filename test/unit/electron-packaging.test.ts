import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

const require = createRequire(import.meta.url);
// electron-builder's own YAML reader and JSON schema, so the file is checked the way `npm run dist` reads it.
const yaml = require('js-yaml') as { load(text: string): unknown };
const Ajv = require('ajv') as new (options: object) => { compile(schema: unknown): ((data: unknown) => boolean) & { errors?: unknown } };

describe('electron packaging config', () => {
  const config = yaml.load(readFileSync('electron-builder.yml', 'utf8')) as Record<string, any>;

  it('is valid for electron-builder', () => {
    const validate = new Ajv({ allErrors: true, strict: false }).compile(JSON.parse(readFileSync('node_modules/app-builder-lib/scheme.json', 'utf8')));
    assert.equal(validate(config), true, JSON.stringify(validate.errors));
  });

  it('ships the icons the shell and the installers use', () => {
    for (const colour of ['green', 'amber', 'red']) {
      assert.ok(existsSync(`resources/icons/tray-${colour}.png`), colour);
      assert.ok(existsSync(`resources/icons/tray-${colour}@2x.png`), colour);
    }
    assert.ok(existsSync(config.linux.icon));
  });

  it('builds AppImage and deb, NSIS and dmg', () => {
    assert.deepEqual(config.linux.target, ['AppImage', 'deb']);
    assert.deepEqual(config.win.target, ['nsis']);
    assert.deepEqual(config.mac.target, ['dmg']);
  });

  it('packs into asar with better-sqlite3 unpacked and rebuilt at packaging time', () => {
    assert.equal(config.asar, true);
    assert.ok(config.asarUnpack.some((glob: string) => glob.includes('better-sqlite3')));
    assert.equal(config.npmRebuild, true);
    const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
    assert.equal(pkg.allowScripts.electron, false, 'the Electron download/rebuild must not run at npm install');
    assert.equal(pkg.scripts.postinstall, undefined, 'no rebuild for Electron at npm install');
    assert.match(pkg.scripts.dist, /electron-builder install-app-deps/);
  });

  it('sets the fuses: no run-as-node, no NODE_OPTIONS, encrypted cookies, asar integrity, app only from asar', () => {
    assert.deepEqual(
      { ...config.electronFuses },
      {
        runAsNode: false, enableNodeOptionsEnvironmentVariable: false, enableNodeCliInspectArguments: false,
        enableCookieEncryption: true, enableEmbeddedAsarIntegrityValidation: true, onlyLoadAppFromAsar: true,
        loadBrowserProcessSpecificV8Snapshot: false, grantFileProtocolExtraPrivileges: false,
      },
    );
  });
});
