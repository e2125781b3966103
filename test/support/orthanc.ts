import type { ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnDaemon, untilReadyOrExit } from './daemon.js';
import { freePort } from './net.js';
import { requireFile, requireTool } from './process.js';

const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';

export interface OrthancOptions {
  /** Working directory: config, log and (unless storageDir is given) the database live here. */
  dir: string;
  aet?: string;
  dicomPort?: number;
  httpPort?: number;
  /** Remote DICOM nodes by name: [AET, host, port]. */
  modalities?: Record<string, [string, string, number]>;
  storageDir?: string;
  /** Merged over the generated configuration, for the odd test that needs another option. */
  extraConfig?: Record<string, unknown>;
  startTimeoutMs?: number;
}

export interface OrthancPeer {
  /** e.g. http://127.0.0.1:8042 (no trailing slash). */
  httpUrl: string;
  /** e.g. http://127.0.0.1:8042/dicom-web (no trailing slash). */
  dicomWebUrl: string;
  httpPort: number;
  dicomPort: number;
  aet: string;
  logFile: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

function orthancConfig(o: {
  aet: string;
  httpPort: number;
  dicomPort: number;
  storageDir: string;
  modalities: Record<string, [string, string, number]>;
}): Record<string, unknown> {
  return {
    Name: `test-${o.aet}`,
    StorageDirectory: o.storageDir,
    IndexDirectory: o.storageDir,
    StorageCompression: false,
    Plugins: [DICOMWEB_PLUGIN],
    HttpServerEnabled: true,
    HttpPort: o.httpPort,
    RemoteAccessAllowed: false, // Orthanc 1.10 has no bind address; this refuses non-loopback clients
    AuthenticationEnabled: false,
    SslEnabled: false,
    HttpCompressionEnabled: false,
    HttpDescribeErrors: true,
    OrthancExplorerEnabled: false,
    WebDavEnabled: false,
    MetricsEnabled: false,
    DicomServerEnabled: true,
    DicomAet: o.aet,
    DicomPort: o.dicomPort,
    DicomCheckCalledAet: false,
    DicomModalities: o.modalities,
    DicomAlwaysAllowEcho: true,
    DicomAlwaysAllowStore: true,
    DicomAlwaysAllowFind: true,
    DicomAlwaysAllowGet: true,
    DicomAlwaysAllowMove: true,
    DicomAssociationCloseDelay: 0,
    DicomScuTimeout: 10,
    UnknownSopClassAccepted: true,
    ConcurrentJobs: 2,
    HttpThreadsCount: 10,
    DicomThreadsCount: 4,
    SaveJobs: false,
    JobsHistorySize: 10,
    StableAge: 2,
    SyncStorageArea: false, // test data is disposable; fsync only slows the suite
    DeidentifyLogs: false,
    DicomWeb: {
      Enable: true,
      Root: '/dicom-web/',
      EnableWado: false,
      Ssl: false,
      StudiesMetadata: 'Full',
      SeriesMetadata: 'Full',
    },
  };
}

async function waitForSystemEndpoint(httpUrl: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = 'no attempt made';
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${httpUrl}/system`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.ok) return;
      lastError = `HTTP ${res.status}`;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new Error(`GET ${httpUrl}/system did not answer within ${timeoutMs} ms (last: ${lastError})`);
}

/** Starts a private Orthanc (never the system service) with the DICOMweb plugin, on loopback. */
export async function startOrthanc(opts: OrthancOptions): Promise<OrthancPeer> {
  const exe = requireTool('Orthanc', 'orthanc');
  requireFile(DICOMWEB_PLUGIN, 'orthanc-dicomweb');
  const aet = opts.aet ?? 'ORTHANC';
  const httpPort = opts.httpPort ?? (await freePort());
  const dicomPort = opts.dicomPort ?? (await freePort());
  const storageDir = opts.storageDir ?? join(opts.dir, 'storage');
  await mkdir(opts.dir, { recursive: true });
  await mkdir(storageDir, { recursive: true });

  const config = {
    ...orthancConfig({ aet, httpPort, dicomPort, storageDir, modalities: opts.modalities ?? {} }),
    ...opts.extraConfig,
  };
  const configFile = join(opts.dir, 'orthanc.json');
  await writeFile(configFile, JSON.stringify(config, null, 2));

  const logFile = join(opts.dir, 'orthanc.log');
  const daemon = spawnDaemon(exe, [configFile], { logFile, cwd: opts.dir });
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  await untilReadyOrExit(daemon, 'Orthanc', waitForSystemEndpoint(httpUrl, opts.startTimeoutMs ?? 30_000));

  return {
    httpUrl,
    dicomWebUrl: `${httpUrl}/dicom-web`,
    httpPort,
    dicomPort,
    aet,
    logFile,
    process: daemon.process,
    stop: () => daemon.stop(),
  };
}
