// Where the Electron binary is, or undefined when it was never downloaded (ELECTRON_SKIP_BINARY_DOWNLOAD, or a
// blocked download). Asking `require('electron')` would start the download that was skipped (Electron ≥ 45).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** @returns {string | undefined} */
export function installedElectronBinary() {
  let packageDir;
  try {
    packageDir = dirname(createRequire(import.meta.url).resolve('electron/package.json'));
  } catch {
    return undefined;
  }
  const pathFile = join(packageDir, 'path.txt');
  const executable = existsSync(pathFile) ? readFileSync(pathFile, 'utf8').trim() : undefined;
  if (process.env.ELECTRON_OVERRIDE_DIST_PATH) return join(process.env.ELECTRON_OVERRIDE_DIST_PATH, executable || 'electron');
  if (!executable) return undefined;
  const binary = join(packageDir, 'dist', executable);
  return existsSync(binary) ? binary : undefined;
}
