/**
 * The clinic's archive as an appliance service: the reader for the destination marked `archive: true`
 * (rebuilt when destinations change), read-through retrieve and federated search over it, and what the
 * index learns from forwarding: an instance delivered to the archive destination is held by the archive.
 *
 * The reader signs in with the very AuthProvider forwarding uses for that destination (handed in by the
 * composition root), asked afresh at each request, so one device-code sign-in or cached token serves both.
 */
import type { Logger } from 'pino';
import type { AuthProvider } from '../forward/auth.js';
import type { ApplianceService } from '../service.js';
import { archiveDestination, type DestinationSettings, type Settings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import type { Egress } from '../network/egress.js';
import { ArchiveReachability } from './archive-reachability.js';
import { ArchiveReader } from './archive-reader.js';
import { FederatedSearch } from './federated-search.js';
import { ReadThrough } from './read-through.js';

export interface CloudServiceOptions {
  archive: Archive;
  logger: Logger;
  settings: () => Settings;
  /** Forwarding's AuthProvider for a destination (forward/service.ts authFor). */
  authFor: (destination: DestinationSettings) => AuthProvider;
  /** The proxy and CAs for reads (forward/service.ts egress); without it, the environment's proxy and the default CAs. */
  egress?: () => Egress;
}

export class CloudService implements ApplianceService {
  readonly name = 'cloud';
  readonly readThrough: ReadThrough;
  readonly federatedSearch: FederatedSearch;
  private current: { reader: ArchiveReader; destination: DestinationSettings; egress: Egress | undefined; reachability: ArchiveReachability } | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly log: Logger;

  constructor(private readonly options: CloudServiceOptions) {
    this.log = options.logger.child({ component: 'cloud' });
    const reader = () => this.current?.reader;
    this.readThrough = new ReadThrough({ archive: options.archive, reader, logger: options.logger });
    this.federatedSearch = new FederatedSearch({ archive: options.archive, reader, settings: options.settings, logger: options.logger });
  }

  /** Whether the archive destination answered the last read (undefined before any, or without an archive). */
  readReachability() {
    return this.current?.reachability.state;
  }

  /** The archive destination's reader; undefined when no (enabled) destination is the archive. */
  reader(): ArchiveReader | undefined {
    return this.current?.reader;
  }

  async start(): Promise<string[]> {
    this.unsubscribe = this.options.archive.events.on('outbox-changed', (change) => {
      if (change.state !== 'delivered' || change.destination !== this.current?.destination.name) return;
      this.options.archive.cloud.markInCloud(change.sopInstanceUids);
    });
    await this.applySettings(this.options.settings());
    const destination = this.current?.destination;
    return destination ? [`archive (read-through, federated search): ${destination.name} at ${destination.baseUrl}`] : [];
  }

  /**
   * After a settings edit: a new reader when the archive destination changed (or another one became it). A
   * destination disabled in settings is not read from either.
   */
  async applySettings(settings: Settings): Promise<void> {
    const candidate = archiveDestination(settings);
    const destination = candidate?.enabled ? candidate : undefined;
    const egress = this.options.egress?.();
    if (JSON.stringify(destination) === JSON.stringify(this.current?.destination) && egress === this.current?.egress) return;
    const previous = this.current;
    if (destination) {
      const reachability = this.reachabilityOf(destination);
      this.current = { destination, egress, reachability, reader: this.readerFor(destination, egress, reachability) };
    } else {
      this.current = undefined;
    }
    // In-flight reads finish on the old pool (undici closes it once they are done).
    if (previous) void previous.reader.close().catch(() => undefined);
    if (!destination) {
      if (previous) this.log.info({ event: 'archive-off', destination: previous.destination.name }, 'no destination is the archive now');
      return;
    }
    // Instances delivered before this destination became the archive (or before the index knew locations).
    const marked = this.options.archive.cloud.markDeliveredInCloud(destination.name);
    this.log.info({ event: 'archive-on', destination: destination.name, baseUrl: destination.baseUrl, markedInCloud: marked }, 'reading from the archive destination');
  }

  private readerFor(destination: DestinationSettings, egress: Egress | undefined, reachability: ArchiveReachability): ArchiveReader {
    const { authFor } = this.options;
    // Asked at each request: forwarding rebuilds its providers when destinations change.
    const auth: AuthProvider = { authorization: (refresh) => authFor(destination).authorization(refresh) };
    return ArchiveReader.forDestination(destination, auth, { reachability, ...(egress ? { egress } : {}) });
  }

  /** What reads learn of the destination, kept while the same one stays the archive (its URL unchanged). */
  private reachabilityOf(destination: DestinationSettings): ArchiveReachability {
    const previous = this.current;
    if (previous && previous.destination.name === destination.name && previous.destination.baseUrl === destination.baseUrl) return previous.reachability;
    return new ArchiveReachability((now) => {
      if (now.state === 'offline') this.log.warn({ event: 'archive-read-offline', destination: destination.name, reason: now.lastError }, 'the archive cannot be reached for reads');
      else this.log.info({ event: 'archive-read-online', destination: destination.name }, 'the archive answers reads');
    });
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.readThrough.close();
    const previous = this.current;
    this.current = undefined;
    await previous?.reader.close();
  }
}
