/**
 * Secrets at rest. settings.json keeps each destination secret (and the proxy password) as `enc:v1:<iv>.<tag>.<ciphertext>`
 * (AES-256-GCM, base64url), sealed with a key from a SecretBox: by default a random key in
 * `<dataDir>/secret.key` (mode 0600); the Electron shell may supply one backed by safeStorage.
 * Plain text found in settings.json (typed in by hand) is sealed at the next start.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DestinationAuth, NetworkSettings, Settings } from '../contract/settings.js';

const SEALED_PREFIX = 'enc:v1:';

/** Seals and opens small secrets. Implementations must never log what they handle. */
export interface SecretBox {
  seal(plain: string): string;
  open(sealed: string): string;
}

function isSealed(value: string): boolean {
  return value.startsWith(SEALED_PREFIX);
}

/** AES-256-GCM with a 32-byte key. */
export class KeySecretBox implements SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('secret key must be 32 bytes');
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${SEALED_PREFIX}${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${ciphertext.toString('base64url')}`;
  }

  open(sealed: string): string {
    if (!isSealed(sealed)) return sealed;
    const [iv, tag, ciphertext] = sealed.slice(SEALED_PREFIX.length).split('.');
    if (!iv || !tag || ciphertext === undefined) throw new Error('sealed secret is malformed');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    try {
      return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('sealed secret cannot be opened with this appliance\'s key (was secret.key replaced?)');
    }
  }
}

export const SECRET_KEY_FILE = 'secret.key';

/** The headless default: a random key created once in the data dir, readable only by its owner. */
export function fileSecretBox(dataDir: string): SecretBox {
  const path = join(dataDir, SECRET_KEY_FILE);
  // Never replaced: a key that sealed secrets must stay. A second process creating it at the same time loses, and reads the first's.
  if (!existsSync(path)) writeFileDurably(path, randomBytes(32).toString('base64'), { replace: false });
  chmodSync(path, 0o600);
  return new KeySecretBox(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64'));
}

const SECRET_FIELDS: Record<DestinationAuth['kind'], readonly string[]> = {
  none: [],
  basic: ['password'],
  bearer: ['token'],
  'entra-client-secret': ['clientSecret'],
  'entra-client-certificate': [],
  'entra-device-code': [],
  'managed-identity': [],
};

function mapSecrets(auth: DestinationAuth, map: (value: string) => string): DestinationAuth {
  const fields = SECRET_FIELDS[auth.kind];
  if (fields.length === 0) return auth;
  const copy: Record<string, unknown> = { ...auth };
  for (const field of fields) if (typeof copy[field] === 'string') copy[field] = map(copy[field] as string);
  return copy as DestinationAuth;
}

/** Settings with every plain-text destination secret sealed; `changed` tells whether the file needs writing. */
export function sealSettingsSecrets(settings: Settings, box: SecretBox): { settings: Settings; changed: boolean } {
  let changed = false;
  const destinations = settings.destinations.map((destination) => {
    const auth = mapSecrets(destination.auth, (value) => {
      if (isSealed(value)) return value;
      changed = true;
      return box.seal(value);
    });
    return auth === destination.auth ? destination : { ...destination, auth };
  });
  let network = settings.network;
  if (network.proxy.password && !isSealed(network.proxy.password)) {
    changed = true;
    network = { ...network, proxy: { ...network.proxy, password: box.seal(network.proxy.password) } };
  }
  return { settings: changed ? { ...settings, destinations, network } : settings, changed };
}

/** The network settings with the proxy password opened, for the Egress only; never log the result. */
export function openNetworkSecrets(network: NetworkSettings, box: SecretBox): NetworkSettings {
  if (!network.proxy.password) return network;
  return { ...network, proxy: { ...network.proxy, password: box.open(network.proxy.password) } };
}

/** The auth settings with secrets opened, for forward/ only; never log the result. */
export function openAuthSecrets(auth: DestinationAuth, box: SecretBox): DestinationAuth {
  return mapSecrets(auth, (value) => box.open(value));
}

/**
 * Seals plain-text destination secrets in the settings file itself, as stored (command-line overrides are
 * not in it and must not be written into it). Returns true when the file was rewritten.
 */
export function sealSettingsFile(path: string, box: SecretBox): boolean {
  if (!existsSync(path)) return false;
  const data = JSON.parse(readFileSync(path, 'utf8')) as { destinations?: Array<{ auth?: DestinationAuth }>; network?: { proxy?: { password?: unknown } } };
  let changed = false;
  const proxy = data.network?.proxy;
  if (proxy && typeof proxy.password === 'string' && proxy.password && !isSealed(proxy.password)) {
    proxy.password = box.seal(proxy.password);
    changed = true;
  }
  for (const destination of data.destinations ?? []) {
    if (!destination.auth || !(destination.auth.kind in SECRET_FIELDS)) continue;
    destination.auth = mapSecrets(destination.auth, (value) => {
      if (isSealed(value)) return value;
      changed = true;
      return box.seal(value);
    });
  }
  if (!changed) return false;
  writeFileDurably(path, `${JSON.stringify(data, null, 2)}\n`, { replace: true });
  return true;
}

/**
 * Puts `text` at `path` (mode 0600) so that a power cut leaves either what was there before or the whole new
 * file, never an empty or partial one: written to a temp file and synced, renamed into place (linked, when
 * an existing file must not be replaced), then the folder synced. Returns false when `replace` is false and
 * the file already exists.
 */
function writeFileDurably(path: string, text: string, options: { replace: boolean }): boolean {
  const temp = `${path}.${process.pid}.writing`;
  const fd = openSync(temp, 'w', 0o600);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  let placed = true;
  try {
    if (options.replace) renameSync(temp, path);
    else {
      try {
        linkSync(temp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        placed = false;
      }
      rmSync(temp, { force: true });
    }
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
  const folder = openSync(dirname(path), 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
  return placed;
}
