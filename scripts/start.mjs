#!/usr/bin/env node
// `npm start`: builds, then launches the Electron shell; where Electron's binary is missing, runs headless.
import { spawnSync, spawn } from 'node:child_process';
import { constants } from 'node:os';
import { installedElectronBinary } from './electron-binary.mjs';
import { APPLIANCE_NODE_FLAGS } from './node-flags.mjs';

const build = spawnSync(process.execPath, ['scripts/build.mjs'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);

const electronBinary = installedElectronBinary();
const args = process.argv.slice(2);
const child = electronBinary
  ? spawn(electronBinary, ['.', ...args], { stdio: 'inherit' })
  : (console.log('Electron binary is not installed here (its download was skipped or blocked): starting the headless appliance instead.'),
    spawn(process.execPath, [...APPLIANCE_NODE_FLAGS, 'bin/dicom-edge.js', 'serve', ...args], { stdio: 'inherit' }));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
// A child killed by a signal exits the way a shell reports it (128 + the signal's number), never 0.
child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
