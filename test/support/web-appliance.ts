import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Appliance, type ApplianceOptions, type ApplianceOverrides } from '../../main/core/appliance.js';
import { SETTINGS_FILE_NAME } from '../../main/core/settings/settings-file.js';
import type { WebService } from '../../main/core/web/web-service.js';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort } from './net.js';

/** fetch options, with Buffers allowed as bodies. */
export type ApiInit = Omit<RequestInit, 'body'> & { body?: Buffer | Uint8Array | string };

export interface WebAppliance {
  appliance: Appliance;
  dataDir: string;
  /** e.g. http://127.0.0.1:PORT (https: when the appliance listens beyond loopback) */
  baseUrl: string;
  dicomWebUrl: string;
  token: string;
  dimsePort: number;
  /** fetch with the bearer token. */
  api(path: string, init?: ApiInit): Promise<Response>;
  stop(): Promise<void>;
}

/** A whole appliance (archive, DIMSE, forwarder, HTTP) on free loopback ports in a temp data dir. */
export async function startWebAppliance(options: {
  overrides?: ApplianceOverrides;
  dataDir?: string;
  /** No --api-token: the appliance generates its session token, as a start without one does. */
  generatedToken?: boolean;
  /** The settings file the appliance starts with (e.g. destinations), as a user would have written it. */
  settings?: Record<string, unknown>;
  /** Store-and-forward hooks, e.g. msal pointed at the Entra double. */
  forward?: ApplianceOptions['forward'];
} = {}): Promise<WebAppliance> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'dicom-edge-web-')));
  if (options.settings) {
    await mkdir(dataDir, { recursive: true });
    await writeFile(join(dataDir, SETTINGS_FILE_NAME), JSON.stringify(options.settings));
  }
  const tokenFlag = options.generatedToken ? undefined : options.overrides?.apiToken ?? `test-token-${Math.random().toString(36).slice(2)}`;
  const dimsePort = options.overrides?.dimsePort ?? (await freePort());
  const httpPort = options.overrides?.httpPort ?? (await freePort());
  const appliance = await Appliance.create({
    dataDir,
    // The AE title comes from the settings (default DICOMEDGE), not a flag, so a settings edit can change it.
    overrides: { ...options.overrides, dimsePort, httpPort, apiToken: tokenFlag },
    announce: () => undefined,
    forward: options.forward,
  });
  const token = tokenFlag ?? appliance.apiToken;
  try {
    await appliance.start();
  } catch (error) {
    await appliance.stop();
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const web = appliance.services.find((s) => s.name === 'http') as WebService;
  const baseUrl = `${web.https ? 'https' : 'http'}://127.0.0.1:${web.boundPort}`;
  // Beyond loopback it speaks HTTPS: api() trusts exactly its certificate (a self-signed one; a configured one
  // signed by a CA needs that CA, which the test has).
  const dispatcher = web.https ? new Agent({ connect: { ca: web.https.cert } }) : undefined;
  return {
    appliance,
    dataDir,
    baseUrl,
    dicomWebUrl: `${baseUrl}/dicom-web`,
    token,
    dimsePort,
    api: (path, init = {}) => {
      const request = { ...init, body: init.body as BodyInit | undefined, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } };
      // Node's own fetch bundles an older undici, whose handlers the package's Agent refuses: its fetch goes with its Agent.
      if (dispatcher) return undiciFetch(`${baseUrl}${path}`, { ...(request as Parameters<typeof undiciFetch>[1]), dispatcher }) as unknown as Promise<Response>;
      return fetch(`${baseUrl}${path}`, request);
    },
    stop: async () => {
      await dispatcher?.close();
      await appliance.stop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The appliance's log lines so far, from its log files. */
export async function logLines(w: Pick<WebAppliance, 'dataDir'>): Promise<Record<string, unknown>[]> {
  const dir = join(w.dataDir, 'logs');
  const lines: Record<string, unknown>[] = [];
  for (const name of (await readdir(dir)).sort()) {
    for (const line of (await readFile(join(dir, name), 'utf8')).split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
  }
  return lines;
}
