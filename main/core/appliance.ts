import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { CloudService } from './cloud/cloud-service.js';
import { CloudSync } from './cloud/cloud-sync.js';
import { CloudWorklistService } from './cloud/cloud-worklist.js';
import { UpsStateSync } from './cloud/ups-state-sync.js';
import { fetchThrough, Prefetcher } from './cloud/prefetch.js';
import { DimseService } from './dimse/dimse-service.js';
import { echo } from './dimse/echo-scu.js';
import { createLogger, type LogHandle } from './logging.js';
import type { ApplianceService } from './service.js';
import { LiveSettings } from './settings/live-settings.js';
import { applyOverrides, type SettingsOverrides } from './settings/overrides.js';
import { SETTINGS_FILE_NAME, SettingsFile } from './settings/settings-file.js';
import type { Settings } from './contract/settings.js';
import { assertStartable, startProblems } from './start-checks.js';
import { Archive, type InstanceInfo } from './store/archive.js';
import { ArchivePaths } from './store/paths.js';
import type { RecoveryReport } from './store/recovery.js';
import { WebService } from './web/web-service.js';
import { registerPeersApi } from './web/peers-api.js';
import { fileSecretBox, sealSettingsSecrets, type SecretBox } from './forward/secrets.js';
import { ForwardService, type ForwardServiceOptions } from './forward/service.js';

// What the desktop shell needs of the rooms, handed to it here so that it imports only the composition root.
export type { DestinationState } from './forward/control.js';
export { KeySecretBox, type SecretBox } from './forward/secrets.js';
export type { ArchiveEvents } from './store/events.js';
export { parseResolvedProxy, withSystemProxy, type SystemProxy } from './network/system-proxy.js';

/** Values given on the command line (or by the Electron shell); they win over the settings file. */
export type ApplianceOverrides = SettingsOverrides;

export interface ApplianceOptions {
  dataDir: string;
  overrides?: ApplianceOverrides;
  /** Write logs to stdout as well as the log file (headless mode). */
  logToStdout?: boolean;
  /** Write the rotating log file under the data dir (default true); off where stdout is already kept, as by journald. */
  logFile?: boolean;
  /** Print function for the listener lines; defaults to console.log. */
  announce?: (line: string) => void;
  /** Store-and-forward hooks: the Electron shell's safeStorage-backed SecretBox and system proxy; msal overrides in tests. */
  forward?: Pick<ForwardServiceOptions, 'secretBox' | 'msal' | 'proxyEnvironment'>;
}

export { applyOverrides };

/**
 * Settings the running services read at each use, so an edit applies at once: the DIMSE association
 * policy and timeouts (read per association), peers, destinations and the network (proxy, CAs: forward workers
 * and the archive reader are rebuilt), the cloud settings (read per query), the storage limits and the STOW size limit. Everything else (listeners, HTTP access, TLS, log level) is
 * read at start and waits for a restart.
 */
export const LIVE_SETTINGS: readonly string[] = [
  'aeTitle', 'peers', 'destinations', 'network', 'storage', 'cloud', 'http.maxRequestBytes',
  'dimse.acceptAnyCalledAe', 'dimse.allowedCallingAes', 'dimse.maxAssociations', 'dimse.acceptPrivateSopClasses',
  'dimse.artimTimeoutMs', 'dimse.associationTimeoutMs', 'dimse.dimseIdleTimeoutMs',
];

/**
 * Patient data and secrets are for this user only. The umask makes every file and folder the services
 * create from now on 0600/0700 (archive files and folders, temp files, the index and its -wal/-shm,
 * logs, settings writes), wherever in the code they are created; the data dir and the files an older
 * version created readable by all are tightened here. The data dir at 0700 alone already keeps other
 * local users out of everything below it.
 */
export function restrictToOwner(dataDir: string): void {
  process.umask(0o077);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    chmodSync(dataDir, 0o700);
    const index = new ArchivePaths(dataDir).databaseFile;
    for (const path of [join(dataDir, SETTINGS_FILE_NAME), index, `${index}-wal`, `${index}-shm`]) {
      if (existsSync(path)) chmodSync(path, 0o600);
    }
  } catch (error) {
    throw new Error(`cannot make the data dir ${dataDir} private to this user (mode 0700): ${(error as Error).message}`);
  }
}

/** Routes an instance to the enabled destinations whose filter it passes. */
export function routeFor(settings: Settings): (instance: InstanceInfo) => string[] {
  return (instance) =>
    settings.destinations
      .filter((d) => d.enabled)
      .filter((d) => d.route.callingAes.length === 0 || d.route.callingAes.includes(instance.callingAe))
      .filter((d) => d.route.modalities.length === 0 || d.route.modalities.includes(instance.modality))
      .map((d) => d.name);
}

/**
 * The composition root: builds the services from settings, starts them in order and stops them in
 * reverse order. Both the headless CLI and the Electron shell use it.
 */
export class Appliance {
  readonly services: ApplianceService[] = [];
  /** Store-and-forward: status and manual actions for /api. */
  forward: ForwardService | undefined;
  /** The clinic's archive: read-through retrieve and federated search (idle while no destination is the archive). */
  cloud: CloudService | undefined;
  private stopping: Promise<void> | undefined;
  /** True once every service has started (readiness for /api/ready). */
  started = false;

  /** Settings as stored, configured (flags applied) and running; edits go through it. */
  readonly live: LiveSettings;

  private constructor(
    readonly dataDir: string,
    readonly settingsFile: SettingsFile,
    stored: Settings,
    overrides: ApplianceOverrides | undefined,
    readonly logger: Logger,
    private readonly logHandle: LogHandle,
    readonly archive: Archive,
    readonly recovery: RecoveryReport,
    /** The session token every HTTP route requires. */
    readonly apiToken: string,
    /** Seals destination secrets at rest (settings writes and forward/). */
    readonly secretBox: SecretBox,
    private readonly announce: (line: string) => void,
  ) {
    this.live = new LiveSettings({
      file: settingsFile, stored, overrides, livePaths: LIVE_SETTINGS, startProblems,
      seal: (settings) => sealSettingsSecrets(settings, secretBox).settings,
      apply: (running, previous) => this.applyRunning(running, previous),
    });
  }

  /** The settings in force. */
  get settings(): Settings {
    return this.live.running;
  }

  /** The SHA-256 fingerprint of the local server's certificate while it speaks HTTPS (a bind beyond loopback). */
  get httpsFingerprint(): string | undefined {
    return this.services.find((service): service is WebService => service instanceof WebService)?.https?.fingerprint256;
  }

  static async create(options: ApplianceOptions): Promise<Appliance> {
    restrictToOwner(options.dataDir);
    const { file, settings: stored } = await SettingsFile.open(options.dataDir);
    const settings = applyOverrides(stored, options.overrides);
    // Overrides are validated with the file, so a bad flag is named like a bad field; PUT /api/settings
    // makes the same check, so a write never leaves settings the next start refuses.
    assertStartable(settings, file.path);
    const logHandle = await createLogger({ dataDir: options.dataDir, level: settings.log.level, stdout: options.logToStdout ?? false, file: options.logFile === false ? false : undefined });
    const logger = logHandle.logger;
    const { archive, recovery } = await Archive.open({
      dataDir: options.dataDir,
      limits: settings.storage,
      logger,
      route: routeFor(settings),
    });
    const apiToken = settings.http.apiToken || randomBytes(24).toString('base64url');
    const secretBox = options.forward?.secretBox ?? fileSecretBox(options.dataDir);
    const appliance = new Appliance(options.dataDir, file, stored, options.overrides, logger, logHandle, archive, recovery, apiToken, secretBox,
      options.announce ?? ((line) => console.log(line)));
    appliance.services.push(...(await buildServices(appliance, options)));
    return appliance;
  }

  async start(): Promise<void> {
    this.logger.info({ event: 'start', dataDir: this.dataDir, aeTitle: this.settings.aeTitle }, 'appliance starting');
    for (const service of this.services) {
      const lines = await service.start();
      for (const line of lines) this.announce(line);
    }
    this.started = true;
    // Instances stored before their DICOM JSON was kept get it now, behind everything else (the archive stops it at close).
    void this.archive.startMetadataBackfill();
    this.logger.info({ event: 'started' }, 'appliance started');
  }

  /** After a settings edit: routing of new instances, the storage limits and the forward workers follow. */
  private async applyRunning(running: Settings, previous: Settings): Promise<void> {
    this.archive.setRoute(routeFor(running));
    if (JSON.stringify(running.storage) !== JSON.stringify(previous.storage)) this.archive.setLimits(running.storage);
    await this.forward?.applySettings(running, routeFor(running));
    await this.cloud?.applySettings(running);
  }

  /** No new work; in-flight writes finish; the index closes. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.logger.info({ event: 'stop' }, 'appliance stopping');
      for (const service of [...this.services].reverse()) {
        try {
          await service.stop();
        } catch (error) {
          this.logger.error({ event: 'stop-failed', service: service.name, reason: (error as Error).message }, 'service did not stop cleanly');
        }
      }
      await this.archive.close();
      this.logger.info({ event: 'stopped' }, 'appliance stopped');
      await this.logHandle.close();
    })();
    return this.stopping;
  }
}

/** The listeners and workers, in start order. Each room adds its own factory here. */
async function buildServices(appliance: Appliance, options: ApplianceOptions): Promise<ApplianceService[]> {
  const services: ApplianceService[] = [];
  appliance.forward = new ForwardService({
    archive: appliance.archive, settings: appliance.settings, dataDir: appliance.dataDir, logger: appliance.logger,
    route: routeFor(appliance.settings), settingsFile: appliance.settingsFile.path,
    onSealed: (sealed) => appliance.live.adoptSealed(sealed), ...options.forward, secretBox: appliance.secretBox,
  });
  services.push(appliance.forward);
  const forward = appliance.forward;
  appliance.cloud = new CloudService({
    archive: appliance.archive, logger: appliance.logger, settings: () => appliance.settings,
    authFor: (destination) => forward.authFor(destination),
    egress: () => forward.egress(),
  });
  services.push(appliance.cloud);
  const cloud = appliance.cloud;
  // Both idle while no destination is the archive; they read their settings at each use.
  const prefetch = new Prefetcher({
    archive: appliance.archive, reader: () => cloud.reader(), fetchStudy: fetchThrough(cloud.readThrough),
    settings: () => appliance.settings.cloud.prefetch, logger: appliance.logger,
  });
  services.push(new CloudSync({
    archive: appliance.archive, reader: () => cloud.reader(), settings: () => appliance.settings.cloud.changeFeed,
    logger: appliance.logger, onNewStudies: (studyUids) => prefetch.cloudStudiesAppeared(studyUids),
    onCopiesDropped: (studyUids) => prefetch.copiesDropped(studyUids),
  }));
  services.push(prefetch);
  // The archive's UPS-RS worklist kept here for Modality Worklist C-FIND, and MPPS moves of its items sent back.
  services.push(new CloudWorklistService({
    archive: appliance.archive, reader: () => cloud.reader(), settings: () => appliance.settings.cloud.worklist, logger: appliance.logger,
  }));
  services.push(new UpsStateSync({
    archive: appliance.archive, reader: () => cloud.reader(), settings: () => appliance.settings.cloud.worklist, logger: appliance.logger,
  }));
  services.push(new DimseService({
    archive: appliance.archive, logger: appliance.logger, settings: () => appliance.settings, cloud: () => appliance.cloud,
  }));
  services.push(new WebService({
    archive: appliance.archive, logger: appliance.logger, settings: () => appliance.settings, settingsEditor: appliance.live,
    sessionToken: appliance.apiToken, configuredToken: appliance.settings.http.apiToken, dataDir: appliance.dataDir,
    forward: () => appliance.forward, ready: () => appliance.started, cloud: () => appliance.cloud,
    extraRoutes: [(app) => registerPeersApi(app, { settings: () => appliance.settings, logger: appliance.logger, echo })],
  }));
  return services;
}
