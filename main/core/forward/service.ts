/**
 * Store-and-forward as an appliance service: one DestinationWorker per enabled destination, the
 * ForwardControl that /api uses, and the housekeeping at start (interrupted sends back to pending,
 * rows queued without a destination assigned, plain-text secrets sealed).
 */
import type { Logger } from 'pino';
import type { ApplianceService } from '../service.js';
import type { DestinationSettings, Settings } from '../contract/settings.js';
import type { Archive, InstanceInfo } from '../store/archive.js';
import { isDiskFull } from '../store/disk-full.js';
import type { OutboxWorkerQueries, RowFilter } from '../store/outbox-worker-queries.js';
import type { OutboxState } from '../store/events.js';
import { createAuthProvider, type AuthProvider, type MsalOverrides } from './auth.js';
import { DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.js';
import {
  ForwardControlError,
  type DestinationStatus,
  type DeviceCodeStatus,
  type ForwardControl,
  type OutboxFilter,
  type StudyProgress,
  type TestConnectionResult,
} from './control.js';
import { DestinationWorker } from './destination-worker.js';
import { Egress } from '../network/egress.js';
import { fileSecretBox, openAuthSecrets, openNetworkSecrets, sealSettingsFile, sealSettingsSecrets, type SecretBox } from './secrets.js';
import { sendQido, trimBase } from './stow-client.js';
import { sealedFileCachePlugin, tokenCacheDir } from './token-cache.js';

export interface ForwardServiceOptions {
  archive: Archive;
  settings: Settings;
  dataDir: string;
  logger: Logger;
  /** Routing of newly arriving instances; used to assign rows queued while no destination existed. */
  route: (instance: InstanceInfo) => string[];
  /** settings.json: plain-text destination secrets in it are sealed in place. */
  settingsFile?: string;
  /** Told the settings with sealed secrets, so nothing else keeps the plain text in memory. */
  onSealed?: (settings: Settings) => void;
  /** Defaults to a key file in the data dir; the Electron shell passes one backed by safeStorage. */
  secretBox?: SecretBox;
  /** Test and embedding hooks for msal per destination. */
  msal?: (destination: DestinationSettings) => MsalOverrides | undefined;
  /** Where the proxy variables are read when `network.proxy` is not set; the desktop adds the system proxy. Default process.env. */
  proxyEnvironment?: NodeJS.ProcessEnv;
}

export class ForwardService implements ApplianceService, ForwardControl {
  readonly name = 'forward';
  private readonly queries: OutboxWorkerQueries;
  private readonly workers = new Map<string, DestinationWorker>();
  private readonly authProviders = new Map<string, AuthProvider>();
  private settings: Settings;
  private route: (instance: InstanceInfo) => string[];
  private box: SecretBox | undefined;
  private egressInUse: Egress | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly log: Logger;

  constructor(private readonly options: ForwardServiceOptions) {
    this.queries = options.archive.outboxWork;
    this.settings = options.settings;
    this.route = options.route;
    this.log = options.logger.child({ component: 'forward' });
  }

  private secretBox(): SecretBox {
    this.box ??= this.options.secretBox ?? fileSecretBox(this.options.dataDir);
    return this.box;
  }

  async start(): Promise<string[]> {
    this.tidyOutbox(() => {
      const interrupted = this.queries.resetInterrupted();
      if (interrupted > 0) this.log.info({ event: 'outbox-recovered', rows: interrupted }, 'sends cut by a stop or crash are pending again');
    });
    await this.sealSecrets();
    this.egressInUse = this.buildEgress();
    this.unsubscribe = this.options.archive.events.on('outbox-changed', (change) => {
      if (change.state === 'pending') this.workers.get(change.destination)?.kick();
    });
    this.tidyOutbox(() => this.assignUnrouted());
    this.startWorkers();
    return this.settings.destinations.filter((d) => d.enabled).map((d) => `forwarding to ${d.name}: ${d.baseUrl}`);
  }

  /**
   * The proxy and CAs of every request that leaves the box (forwarding, Entra, the connection test; cloud/
   * reads through it too). Built at start and again when `network` settings change.
   */
  egress(): Egress {
    this.egressInUse ??= this.buildEgress();
    return this.egressInUse;
  }

  private buildEgress(): Egress {
    const egress = Egress.fromSettings(openNetworkSecrets(this.settings.network, this.secretBox()), this.options.proxyEnvironment ?? process.env);
    this.log.info({ event: 'egress', proxy: egress.proxyOrigin ?? null, caFile: this.settings.network.caFile || null }, egress.describe());
    return egress;
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    this.workers.clear();
  }

  /** New settings (from /api): destinations rebuilt, rows waiting under '*' assigned, the new route used. */
  async applySettings(settings: Settings, route: (instance: InstanceInfo) => string[]): Promise<void> {
    const unchanged = JSON.stringify(settings.destinations) === JSON.stringify(this.settings.destinations)
      && JSON.stringify(settings.network) === JSON.stringify(this.settings.network);
    this.settings = settings;
    this.route = route;
    if (unchanged) return;
    await this.sealSecrets();
    this.egressInUse = this.buildEgress();
    await Promise.all([...this.workers.values()].map((w) => w.stop()));
    this.workers.clear();
    this.authProviders.clear();
    this.assignUnrouted();
    this.startWorkers();
  }

  private async sealSecrets(): Promise<void> {
    const { settings, changed } = sealSettingsSecrets(this.settings, this.secretBox());
    const fileChanged = this.options.settingsFile ? sealSettingsFile(this.options.settingsFile, this.secretBox()) : false;
    if (!changed && !fileChanged) return;
    this.settings = settings;
    this.options.onSealed?.(settings);
    this.log.info({ event: 'secrets-sealed' }, 'plain-text secrets were encrypted in settings.json');
  }

  private startWorkers(): void {
    const backoff = internalBackoff();
    for (const destination of this.settings.destinations.filter((d) => d.enabled)) {
      const worker = new DestinationWorker({
        destination,
        queries: this.queries,
        resolvePath: (relativePath) => this.options.archive.paths.absolute(relativePath),
        events: this.options.archive.events,
        auth: this.authFor(destination),
        egress: this.egress(),
        logger: this.options.logger,
        backoff: { baseMs: destination.retryBaseMs ?? backoff.baseMs, capMs: destination.retryCapMs ?? backoff.capMs },
      });
      this.workers.set(destination.name, worker);
      worker.start();
    }
  }

  /**
   * The destination's AuthProvider, one per destination name until destinations change. The archive reader
   * (cloud/) signs in with it too, so one device-code sign-in or cached token serves forwarding and reads.
   */
  authFor(destination: DestinationSettings): AuthProvider {
    let provider = this.authProviders.get(destination.name);
    if (!provider) {
      const box = this.secretBox();
      provider = createAuthProvider(openAuthSecrets(destination.auth, box), {
        cachePlugin: destination.auth.kind.startsWith('entra-') ? sealedFileCachePlugin(tokenCacheDir(this.options.dataDir), destination.name, box) : undefined,
        msal: this.options.msal?.(destination),
        onSignedIn: () => this.workers.get(destination.name)?.resume(),
        egress: this.egress(),
      });
      this.authProviders.set(destination.name, provider);
    }
    return provider;
  }

  /** Housekeeping at start that writes to the index: on a full disk it waits for a later start rather than stopping this one. */
  private tidyOutbox(work: () => void): void {
    try {
      work();
    } catch (error) {
      if (!isDiskFull(error)) throw error;
      this.log.warn({ event: 'outbox-housekeeping-deferred', reason: (error as Error).message }, 'the disk is full: outbox housekeeping waits for a later start');
    }
  }

  private assignUnrouted(): void {
    if (this.settings.destinations.filter((d) => d.enabled).length === 0) return;
    let afterId = 0;
    let assigned = 0;
    for (;;) {
      const rows = this.queries.unrouted(1000, afterId);
      if (rows.length === 0) break;
      afterId = rows[rows.length - 1]!.id;
      const moves = rows.map((row) => ({ ...row, destinations: this.route(row) }));
      this.queries.assign(moves, Date.now());
      assigned += moves.filter((m) => m.destinations.length > 0).length;
    }
    if (assigned > 0) this.log.info({ event: 'outbox-assigned', rows: assigned }, 'instances queued before a destination existed are assigned');
  }

  private destination(name: string): DestinationSettings {
    const destination = this.settings.destinations.find((d) => d.name === name);
    if (!destination) throw new ForwardControlError(`no destination named ${JSON.stringify(name)}`, 404);
    return destination;
  }

  // ---- ForwardControl ------------------------------------------------------------------------

  status(): DestinationStatus[] {
    return this.settings.destinations.map((d) => {
      const worker = this.workers.get(d.name);
      if (worker) return worker.status();
      const { counts, pendingBytes } = this.queries.counts(d.name);
      return {
        name: d.name, baseUrl: d.baseUrl, state: 'paused', since: 0, lastError: 'disabled in settings', counts, pendingBytes,
        bytesPerSecond: 0, instancesPerSecond: 0, nextAttemptAt: null,
      };
    });
  }

  progress(filter: { destination?: string; studyUid?: string; limit?: number } = {}): StudyProgress[] {
    return this.queries.progress(filter);
  }

  retry(filter: OutboxFilter): number {
    return this.act(filter, 'pending', (f, now) => this.queries.retry(f, now));
  }

  cancel(filter: OutboxFilter): number {
    return this.act(filter, 'cancelled', (f, now) => this.queries.cancel(f, now));
  }

  overwrite(filter: OutboxFilter): number {
    return this.act(filter, 'pending', (f, now) => this.queries.overwrite(f, now));
  }

  private act(filter: OutboxFilter, state: OutboxState, change: (f: RowFilter, now: number) => Array<{ destination: string; study_uid: string; sop_instance_uid: string }>): number {
    if (filter.destination) this.destination(filter.destination);
    const rows = change(filter, Date.now());
    const groups = new Map<string, { destination: string; studyUid: string; uids: string[] }>();
    for (const row of rows) {
      const key = `${row.destination}\u0000${row.study_uid}`;
      const group = groups.get(key) ?? { destination: row.destination, studyUid: row.study_uid, uids: [] };
      group.uids.push(row.sop_instance_uid);
      groups.set(key, group);
    }
    for (const group of groups.values()) {
      this.options.archive.events.emit('outbox-changed', { studyUid: group.studyUid, destination: group.destination, sopInstanceUids: group.uids, state });
    }
    this.log.info({ event: 'outbox-action', state, rows: rows.length, ...filter }, `${rows.length} outbox rows now ${state}`);
    return rows.length;
  }

  pause(destination: string): void {
    this.destination(destination);
    const worker = this.workers.get(destination);
    if (!worker) throw new ForwardControlError(`destination ${destination} is disabled in settings`, 409);
    worker.pause();
  }

  resume(destination: string): void {
    this.destination(destination);
    const worker = this.workers.get(destination);
    if (!worker) throw new ForwardControlError(`destination ${destination} is disabled in settings`, 409);
    worker.resume();
  }

  async testConnection(name: string, draft?: DestinationSettings): Promise<TestConnectionResult> {
    const destination = draft ?? this.destination(name);
    let authorization: string | undefined;
    try {
      // A draft gets its own provider: nothing of it is cached or shared with the saved destination.
      const auth = draft ? createAuthProvider(openAuthSecrets(draft.auth, this.secretBox()), { msal: this.options.msal?.(draft), egress: this.egress() }) : this.authFor(destination);
      authorization = await auth.authorization();
    } catch (error) {
      return { ok: false, step: 'token', message: (error as Error).message };
    }
    const dispatcher = this.egress().dispatcher(destination.baseUrl, { connections: 1, timeoutMs: Math.min(destination.requestTimeoutMs, 30_000) });
    try {
      const answer = await sendQido({ dispatcher, url: `${trimBase(destination.baseUrl)}/studies?limit=1`, authorization, timeoutMs: 30_000 });
      const ok = answer.status === 200 || answer.status === 204;
      const message = ok ? 'connected: the destination answered a study search'
        : answer.status === 403 ? 'HTTP 403: the identity needs the "DICOM Data Owner" role on the DICOM service'
        : `HTTP ${answer.status}${answer.text ? `: ${answer.text}` : ''}`;
      return { ok, step: 'qido', status: answer.status, message };
    } catch (error) {
      return { ok: false, step: 'qido', message: (this.egress().explain(error, destination.baseUrl) as Error).message };
    } finally {
      await dispatcher.close().catch(() => undefined);
    }
  }

  async startDeviceCodeSignIn(name: string): Promise<DeviceCodeStatus> {
    const destination = this.destination(name);
    const provider = this.authFor(destination);
    if (!provider.startDeviceCode) throw new ForwardControlError(`destination ${name} does not use device-code sign-in`, 409);
    return provider.startDeviceCode();
  }

  deviceCodeStatus(name: string): DeviceCodeStatus {
    const destination = this.destination(name);
    const provider = this.authFor(destination);
    if (!provider.deviceCodeStatus) throw new ForwardControlError(`destination ${name} does not use device-code sign-in`, 409);
    return provider.deviceCodeStatus();
  }
}

/** Backoff base/cap from the environment, for tests and field debugging (DICOM_EDGE_FORWARD_BACKOFF=base,cap in ms). */
function internalBackoff(): BackoffPolicy {
  const raw = process.env.DICOM_EDGE_FORWARD_BACKOFF;
  if (!raw) return DEFAULT_BACKOFF;
  const [base, cap] = raw.split(',').map(Number);
  if (!base || !cap || base <= 0 || cap < base) return DEFAULT_BACKOFF;
  return { baseMs: base, capMs: cap };
}
