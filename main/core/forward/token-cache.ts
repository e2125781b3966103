/**
 * msal-node's token cache, persisted sealed by the SecretBox: one 0600 file per destination under
 * `<dataDir>/forward/tokens/` (headless), or whatever the box's owner (Electron safeStorage) provides.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ICachePlugin, TokenCacheContext } from '@azure/msal-node';
import type { SecretBox } from './secrets.js';

export function tokenCacheDir(dataDir: string): string {
  return join(dataDir, 'forward', 'tokens');
}

export function sealedFileCachePlugin(dir: string, name: string, box: SecretBox): ICachePlugin {
  const path = join(dir, `${name}.cache`);
  return {
    async beforeCacheAccess(context: TokenCacheContext) {
      let sealed: string;
      try {
        sealed = await readFile(path, 'utf8');
      } catch {
        return; // no cache yet
      }
      try {
        context.tokenCache.deserialize(box.open(sealed.trim()));
      } catch {
        // A cache sealed with another key is useless, not fatal: the next sign-in replaces it.
      }
    },
    async afterCacheAccess(context: TokenCacheContext) {
      if (!context.cacheHasChanged) return;
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const temp = `${path}.tmp`;
      await writeFile(temp, box.seal(context.tokenCache.serialize()), { mode: 0o600 });
      await chmod(temp, 0o600);
      await rename(temp, path);
    },
  };
}
