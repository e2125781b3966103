/**
 * The destinations' secret key, kept encrypted by the OS (Electron safeStorage: Keychain, DPAPI,
 * libsecret) instead of the headless 0600 key file. Where the OS offers no encryption, returns undefined
 * and the core falls back to its key file.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KeySecretBox, type SecretBox } from '../core/appliance.js';

export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  encryptString(plain: string): Buffer;
  decryptString(encrypted: Buffer): string;
}

const SAFE_KEY_FILE = 'secret.key.safe';

export function safeStorageSecretBox(safeStorage: SafeStorageLike, dataDir: string): SecretBox | undefined {
  if (!safeStorage.isEncryptionAvailable()) return undefined;
  const path = join(dataDir, SAFE_KEY_FILE);
  if (!existsSync(path)) {
    const temp = `${path}.tmp`;
    writeFileSync(temp, safeStorage.encryptString(randomBytes(32).toString('base64')), { mode: 0o600 });
    renameSync(temp, path);
  }
  return new KeySecretBox(Buffer.from(safeStorage.decryptString(readFileSync(path)), 'base64'));
}
