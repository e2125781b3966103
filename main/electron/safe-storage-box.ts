/**
 * The destinations' secret key, kept encrypted by the OS (Electron safeStorage: Keychain, DPAPI,
 * libsecret, KWallet) instead of the headless 0600 key file. Where the OS offers no encryption, or on Linux
 * only Chromium's `basic_text` backend (a key built into every copy of Chromium, so no protection at all),
 * there is no box, with the reason, and the core falls back to its key file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeySecretBox, type SecretBox } from '../core/appliance.js';

export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  /** Linux only. */
  getSelectedStorageBackend?(): string;
  encryptString(plain: string): Buffer;
  decryptString(encrypted: Buffer): string;
}

const SAFE_KEY_FILE = 'secret.key.safe';

/** The box, or none and why; `warning` when the box is kept although it is weak. */
export type SafeStorageChoice = { box: SecretBox; warning?: string; reason?: undefined } | { box: undefined; reason: string; warning?: undefined };

const BASIC_TEXT = 'Electron safeStorage has only its basic_text backend here (no keyring: GNOME libsecret or KWallet), which protects nothing';

export function safeStorageSecretBox(safeStorage: SafeStorageLike, dataDir: string, platform: NodeJS.Platform = process.platform): SafeStorageChoice {
  if (!safeStorage.isEncryptionAvailable()) return { box: undefined, reason: 'the OS offers no encryption to Electron safeStorage' };
  const path = join(dataDir, SAFE_KEY_FILE);
  const weak = platform === 'linux' && safeStorage.getSelectedStorageBackend?.() === 'basic_text';
  if (weak && !existsSync(path)) return { box: undefined, reason: BASIC_TEXT };
  if (weak) {
    // Secrets already sealed with this key would be lost without it: keep it, and say so.
    return {
      box: new KeySecretBox(Buffer.from(safeStorage.decryptString(readFileSync(path)), 'base64')),
      warning: `${BASIC_TEXT}; the key made earlier is kept so the stored secrets still open`,
    };
  }
  if (!existsSync(path)) {
    const temp = `${path}.tmp`;
    writeFileSync(temp, safeStorage.encryptString(randomBytes(32).toString('base64')), { mode: 0o600 });
    renameSync(temp, path);
  }
  return { box: new KeySecretBox(Buffer.from(safeStorage.decryptString(readFileSync(path)), 'base64')) };
}
