import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { ApplianceService } from '../service.js';
import { checkBindPolicy, type AccessSettings } from './access.js';
import type { WebContext } from './context.js';
import { httpsIdentity, type HttpsIdentity } from './https-identity.js';
import { ImagePool, imageThreads } from './image-pool.js';
import { ThumbnailCache } from './thumbnail-cache.js';
import { buildServer, type BuiltServer, type RegisteredRoute } from './server.js';

export type WebServiceContext = Omit<WebContext, 'httpPort' | 'staticDir' | 'version' | 'images' | 'thumbnails'> & {
  staticDir?: string;
  version?: string;
  /** The token from settings or --api-token; '' when the session token was generated. */
  configuredToken: string;
  /** Extra routes (e.g. QIDO-RS) registered on the same server. */
  extraRoutes?: Array<(app: FastifyInstance) => void>;
};

/** The project root: the nearest folder above this module with our package.json. */
function projectRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        if ((JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'dicom-edge') return dir;
      } catch {
        /* keep looking */
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The version in the project's package.json, or 'unknown' when it cannot be found. */
export function appVersion(): string {
  const root = projectRoot();
  if (!root) return 'unknown';
  return (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
}

function defaultStaticDir(): string {
  if (process.env.DICOM_EDGE_RENDERER_DIR) return process.env.DICOM_EDGE_RENDERER_DIR;
  return join(projectRoot() ?? process.cwd(), 'dist', 'renderer');
}

/**
 * How long requests in flight may take to finish when the appliance stops. With the DIMSE listener's grace
 * (they stop one after the other) the whole stop stays within 10 s; nothing unanswered is acknowledged, so
 * cutting an upload loses nothing its sender was told is stored.
 */
const STOP_GRACE_MS = 2_000;

/** The HTTP server: DICOMweb, /api, /api/events and the renderer. */
export class WebService implements ApplianceService {
  readonly name = 'http';
  private server: BuiltServer | undefined;
  private port = 0;
  private identity: HttpsIdentity | undefined;
  private images: ImagePool | undefined;
  private thumbnails: ThumbnailCache | undefined;
  private unsubscribe: Array<() => void> = [];

  constructor(private readonly options: WebServiceContext) {}

  /** The port actually bound (useful when settings ask for 0). */
  get boundPort(): number {
    return this.port;
  }

  /** The routes the running server answers (none while stopped). */
  get routes(): readonly RegisteredRoute[] {
    return this.server?.routes ?? [];
  }

  /** The image workers' threads, and their tasks running or waiting (none while stopped). */
  get imageLoad(): { threads: number; tasks: number; finished: number } {
    return this.images?.load ?? { threads: 0, tasks: 0, finished: 0 };
  }

  /** The rendered thumbnails kept on disk (undefined while stopped). */
  get thumbnailCache(): ThumbnailCache | undefined {
    return this.thumbnails;
  }

  /** The certificate in use while the server speaks HTTPS (a bind beyond loopback). */
  get https(): HttpsIdentity | undefined {
    return this.identity;
  }

  get url(): string {
    const host = this.options.settings().http.host;
    return `${this.identity ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${this.port}`;
  }

  async start(): Promise<string[]> {
    const http = this.options.settings().http;
    const access: AccessSettings = {
      host: http.host,
      configuredToken: this.options.configuredToken,
      sessionToken: this.options.sessionToken,
      basicAuth: http.basicAuth,
      corsOrigins: http.corsOrigins,
      allowedHosts: http.allowedHosts,
    };
    checkBindPolicy(access);
    // Beyond loopback the server speaks only HTTPS, so basic auth and the session token never cross the LAN in clear.
    this.identity = await httpsIdentity(http, this.options.dataDir);
    // Threads start with the first image asked for, and end when idle; the pool itself lives as long as the server.
    this.images = new ImagePool({ threads: imageThreads(http.imageThreads), queue: http.imageQueue, logger: this.options.logger });
    this.thumbnails = this.startThumbnailCache();
    const ctx: WebContext = {
      ...this.options,
      images: this.images,
      thumbnails: this.thumbnails,
      staticDir: this.options.staticDir ?? defaultStaticDir(),
      version: this.options.version ?? appVersion(),
      httpPort: () => this.port,
      https: () => this.identity,
    };
    this.server = await buildServer(ctx, access, this.options.extraRoutes, this.identity);
    await this.server.app.listen({ host: http.host, port: http.port });
    const address = this.server.app.server.address();
    this.port = typeof address === 'object' && address ? address.port : http.port;
    this.options.logger.info({ event: 'http-listening', host: http.host, port: this.port, https: Boolean(this.identity) }, 'HTTP server listening');
    const lines = [`HTTP/DICOMweb: ${this.url}/dicom-web (UI at ${this.url}/)`];
    if (this.identity) {
      const { source, fingerprint256, certFile, generated, notAfter } = this.identity;
      this.options.logger.info({ event: 'https-certificate', source, fingerprint256, certFile, generated, notAfter }, `HTTPS certificate SHA-256 ${fingerprint256}`);
      lines.push(`HTTPS certificate (${source === 'self-signed' ? `self-signed${generated ? ', made now' : ''}, ${certFile}` : certFile}): SHA-256 ${fingerprint256}`);
    }
    if (!this.options.configuredToken) lines.push(`HTTP session token (generated): ${this.options.sessionToken} — open ${this.url}/?token=${this.options.sessionToken}`);
    return lines;
  }

  /** The cache, emptied of an instance whenever its file goes or changes; the files of a previous run are counted in the background. */
  private startThumbnailCache(): ThumbnailCache {
    const { archive, logger } = this.options;
    const cache = new ThumbnailCache({ dir: archive.paths.thumbnailCacheDir, maxBytes: () => this.options.settings().http.thumbnailCacheBytes, logger });
    const drop = ({ sopInstanceUid }: { sopInstanceUid: string }) => void cache.dropInstance(sopInstanceUid);
    this.unsubscribe = [
      archive.events.on('instance-deleted', drop),
      archive.events.on('instance-evicted', drop),
      archive.events.on('instance-stored', (event) => {
        if (event.outcome === 'replaced') drop(event);
      }),
    ];
    void cache.load();
    return cache;
  }

  /** No new requests; those in flight get STOP_GRACE_MS, then every connection is cut (a stalled upload would hold the stop forever). */
  async stop(): Promise<void> {
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    if (!this.server) {
      await this.images?.close();
      this.images = undefined;
      return;
    }
    const { app } = this.server;
    this.server.closeStreams();
    const cut = setTimeout(() => {
      this.options.logger.warn({ event: 'http-connections-cut' }, 'requests still in flight at stop; connections closed');
      app.server.closeAllConnections();
    }, STOP_GRACE_MS);
    try {
      await app.close();
    } finally {
      clearTimeout(cut);
      // After the requests: a worker thread left running would keep the process alive.
      await this.images?.close();
      this.images = undefined;
    }
    this.server = undefined;
  }
}
