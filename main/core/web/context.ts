import type { Logger } from 'pino';
import type { ReadReachability } from '../cloud/archive-reachability.js';
import type { ArchiveReader } from '../cloud/archive-reader.js';
import type { FederatedSearch } from '../cloud/federated-search.js';
import type { ReadThrough } from '../cloud/read-through.js';
import type { LiveSettings } from '../settings/live-settings.js';
import type { Settings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import type { ForwardControl } from './forward-port.js';
import type { HttpsIdentity } from './https-identity.js';
import type { ImageWork } from './image-pool.js';
import type { ThumbnailCache } from './thumbnail-cache.js';

/** Everything the HTTP routes use, handed in by the appliance. */
export interface WebContext {
  archive: Archive;
  logger: Logger;
  /** Current settings (read at request time so a write is seen). */
  settings(): Settings;
  /** GET/PUT /api/settings: the configured settings, and edits of them. */
  settingsEditor: Pick<LiveSettings, 'configured' | 'revision' | 'update'>;
  sessionToken: string;
  dataDir: string;
  version: string;
  forward(): ForwardControl | undefined;
  /** The built renderer (index.html and assets). */
  staticDir: string;
  /** The certificate of the running server when it speaks HTTPS; undefined for plain HTTP on loopback. */
  https?(): HttpsIdentity | undefined;
  /** The port the server listens on (settings may say 0). */
  httpPort(): number;
  /** The image worker threads: every decode, render and conversion goes through them, never the event loop. */
  images: ImageWork;
  /** Rendered thumbnails kept on disk (thumbnail-cache.ts); rendered.ts says which requests use it. */
  thumbnails: Pick<ThumbnailCache, 'image'>;
  /** True once every service has started. */
  ready(): boolean;
  /** The clinic's archive: QIDO federation and WADO read-through (absent: everything is answered from here). */
  cloud?(): {
    readThrough: ReadThrough; federatedSearch: FederatedSearch; reader(): ArchiveReader | undefined; readReachability(): ReadReachability | undefined;
  } | undefined;
}
