/**
 * Start at login on Linux: Electron's login-item call does nothing there, so the XDG autostart entry
 * ($XDG_CONFIG_HOME/autostart, else ~/.config/autostart) is written or removed instead.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const ENTRY_NAME = 'dicom-edge.desktop';

export function autostartFile(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'autostart', ENTRY_NAME);
}

/** What to start: the AppImage itself when running from one (its mount point changes each run), else the binary. */
export function autostartCommand(execPath: string, env: NodeJS.ProcessEnv = process.env): string {
  return env.APPIMAGE || execPath;
}

/** An argument of an Exec key, quoted as the Desktop Entry Specification asks. */
function quoteExecArgument(arg: string): string {
  if (!/[\s"'\\`$<>~|&;*?#()%]/.test(arg)) return arg;
  return `"${arg.replace(/(["`$\\])/g, '\\$1').replace(/%/g, '%%')}"`;
}

export function autostartEntry(command: string): string {
  return [
    '[Desktop Entry]',
    'Type=Application',
    'Name=DICOM Edge',
    'Comment=Receives images from the modalities and forwards them to the cloud',
    `Exec=${quoteExecArgument(command)}`,
    'Terminal=false',
    'X-GNOME-Autostart-enabled=true',
    '',
  ].join('\n');
}

export function setLinuxAutostart(enabled: boolean, options: { file: string; command: string }): void {
  if (!enabled) {
    rmSync(options.file, { force: true });
    return;
  }
  mkdirSync(join(options.file, '..'), { recursive: true });
  const temp = `${options.file}.tmp`;
  writeFileSync(temp, autostartEntry(options.command));
  renameSync(temp, options.file);
}

export function linuxAutostartEnabled(file: string): boolean {
  return existsSync(file);
}
