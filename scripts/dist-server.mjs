#!/usr/bin/env node
// `npm run dist:server`: the .deb for headless Debian/Ubuntu boxes, written to out/.
//
//   /usr/lib/dicom-edge/       the compiled core, the built renderer, production dependencies only,
//                              and node/bin/node: the Node runtime this script runs on (Node 24 LTS)
//   /usr/bin/dicom-edge        the command, on that runtime
//   /usr/lib/systemd/system/dicom-edge.service, and maintainer scripts that add the service user
//
// The runtime comes with the package because Debian 12's nodejs (18) is too old, and because the production
// dependencies installed here are the ones that runtime loads. Options: --compression xz|gzip|none (xz).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { APPLIANCE_NODE_FLAGS } from './node-flags.mjs';

const { values } = parseArgs({ options: { compression: { type: 'string', default: 'xz' } } });
if (!['xz', 'gzip', 'none'].includes(values.compression)) {
  console.error(`dist:server: --compression must be xz, gzip or none, got ${JSON.stringify(values.compression)}`);
  process.exit(2);
}

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const major = Number(process.versions.node.split('.')[0]);
const wantedMajor = Number(/(\d+)/.exec(pkg.engines.node)[1]);
if (major !== wantedMajor) {
  console.error(`dist:server: runs on Node ${process.version}, but the package brings the Node it runs on and package.json wants ${pkg.engines.node}: run it with Node ${wantedMajor} (scripts/install-node.sh)`);
  process.exit(1);
}
if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`dist:server: builds the amd64 package on linux-x64 only (this is ${process.platform}-${process.arch})`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.status !== 0) {
    console.error(`dist:server: ${command} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`})`);
    process.exit(1);
  }
}

run(process.execPath, ['scripts/build.mjs']);

const stage = join('out', 'server', 'root');
const lib = join(stage, 'usr', 'lib', 'dicom-edge');
rmSync(join('out', 'server'), { recursive: true, force: true });
mkdirSync(lib, { recursive: true });

// What bin/dicom-edge.js runs: the compiled core (it never falls back to tsx here) and the page it serves.
for (const file of ['package.json', 'package-lock.json', 'bin/dicom-edge.js', 'README.md']) {
  mkdirSync(join(lib, dirname(file)), { recursive: true });
  copyFileSync(file, join(lib, file));
}
cpSync('dist/main/core', join(lib, 'dist', 'main', 'core'), { recursive: true, filter: (path) => !path.endsWith('.map') });
cpSync('dist/renderer', join(lib, 'dist', 'renderer'), { recursive: true });

// Production dependencies, as the lock file pins them; their install scripts are not needed (the native
// modules come prebuilt for Node-API) and are not run.
const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : [join(dirname(process.execPath), 'npm')];
run(npm[0], [...npm.slice(1), 'ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: lib,
  env: { ...process.env, ELECTRON_SKIP_BINARY_DOWNLOAD: '1' },
});
rmSync(join(lib, 'package-lock.json'));

// The runtime, with its licence.
mkdirSync(join(lib, 'node', 'bin'), { recursive: true });
copyFileSync(process.execPath, join(lib, 'node', 'bin', 'node'));
chmodSync(join(lib, 'node', 'bin', 'node'), 0o755);
const nodeLicense = join(dirname(process.execPath), '..', 'LICENSE');
if (existsSync(nodeLicense)) copyFileSync(nodeLicense, join(lib, 'node', 'LICENSE'));

const binDir = join(stage, 'usr', 'bin');
mkdirSync(binDir, { recursive: true });
writeFileSync(join(binDir, 'dicom-edge'), '#!/bin/sh\n# DICOM Edge on the Node runtime that came with it, with its flags (scripts/node-flags.mjs).\n'
  + `exec /usr/lib/dicom-edge/node/bin/node ${APPLIANCE_NODE_FLAGS.join(' ')} /usr/lib/dicom-edge/bin/dicom-edge.js "$@"\n`, { mode: 0o755 });

const unitDir = join(stage, 'usr', 'lib', 'systemd', 'system');
mkdirSync(unitDir, { recursive: true });
copyFileSync('packaging/deb/dicom-edge.service', join(unitDir, 'dicom-edge.service'));
const docDir = join(stage, 'usr', 'share', 'doc', 'dicom-edge');
mkdirSync(docDir, { recursive: true });
copyFileSync('README.md', join(docDir, 'README.md'));

function sizeKiB(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return Math.ceil(stat.size / 1024);
  return readdirSync(path).reduce((sum, name) => sum + sizeKiB(join(path, name)), 0);
}

const control = join(stage, 'DEBIAN');
mkdirSync(control, { recursive: true });
writeFileSync(join(control, 'control'), [
  'Package: dicom-edge',
  `Version: ${pkg.version}`,
  'Architecture: amd64',
  'Maintainer: DICOM Edge contributors <dicom-edge@localhost>',
  'Section: misc',
  'Priority: optional',
  // The bundled Node needs glibc 2.28 and libstdc++; useradd/userdel come from passwd; systemd-notify from systemd.
  'Depends: libc6 (>= 2.28), libstdc++6, passwd',
  'Recommends: systemd',
  `Installed-Size: ${sizeKiB(stage)}`,
  `Description: ${pkg.description}`,
  ' The headless appliance as a systemd service: a DIMSE listener, a local archive that speaks',
  ' DICOMweb, and store-and-forward to a cloud DICOMweb service. It brings its own Node runtime.',
  '',
].join('\n'));
for (const script of ['postinst', 'prerm', 'postrm']) {
  copyFileSync(join('packaging', 'deb', script), join(control, script));
  chmodSync(join(control, script), 0o755);
}

const deb = join('out', `dicom-edge_${pkg.version}_amd64.deb`);
run('dpkg-deb', ['--root-owner-group', `-Z${values.compression}`, '--build', stage, deb]);
console.log(`dist:server: ${deb}`);
