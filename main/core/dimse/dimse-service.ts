import { readFile } from 'node:fs/promises';
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import type { FederatedSearch } from '../cloud/federated-search.js';
import type { ReadThrough } from '../cloud/read-through.js';
import type { ApplianceService } from '../service.js';
import type { Settings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import { EdgeScp, type QueryRetrieveHandlers } from './association.js';
import { handleFind } from './find.js';
import { RetrieveHandlers } from './retrieve.js';
import { StorageCommitmentService } from './storage-commitment.js';
import { handleWorklistFind } from './worklist-find.js';
import { MppsService } from './mpps.js';
import { WORKFLOW_SOP_CLASSES } from '../dicom/workflow-sop-classes.js';

// dcmjs-dimse logs every PDU through loglevel at trace level by default; our pino lines carry what matters.
dimse.log.setLevel('silent');

/** How long C-STOREs in flight may take to finish when the appliance stops (the whole stop must stay within 10 s). */
const STOP_GRACE_MS = 5_000;

export interface DimseServiceOptions {
  archive: Archive;
  logger: Logger;
  /** Read at every association, so policy edits apply to the next one. */
  settings: () => Settings;
  /** The clinic's archive: C-FIND adds its matches, C-MOVE and C-GET fetch what is only there. */
  cloud?: () => { federatedSearch: FederatedSearch; readThrough: ReadThrough } | undefined;
}

/**
 * TCP connections a listener keeps open, associated or not. maxAssociations only counts accepted
 * associations; the rest leaves room for peers that are still negotiating or being refused with
 * "local limit exceeded", and bounds what a peer opening connections and sending nothing can hold.
 */
export function connectionLimit(maxAssociations: number): number {
  return 4 * maxAssociations + 8;
}

/** The DIMSE listener (and its DICOM TLS twin): one EdgeScp per connection. */
export class DimseService implements ApplianceService {
  readonly name = 'dimse';
  private readonly servers: NetServer[] = [];
  private readonly associations = new Set<EdgeScp>();
  private readonly scps = new Set<EdgeScp>();
  private readonly logger: Logger;
  private readonly queryRetrieve: QueryRetrieveHandlers;
  private readonly storageCommitment: StorageCommitmentService;
  private readonly mpps: MppsService;
  /** Connections dropped since the limit was last reached; logged once per episode, not per socket. */
  private dropped = 0;

  constructor(private readonly options: DimseServiceOptions) {
    this.logger = options.logger.child({ component: 'dimse' });
    const aeTitle = () => options.settings().aeTitle;
    const outgoingTimeouts = () => {
      const { artimTimeoutMs, dimseIdleTimeoutMs } = options.settings().dimse;
      return { connectTimeout: artimTimeoutMs, associationTimeout: artimTimeoutMs, pduTimeout: dimseIdleTimeoutMs };
    };
    this.storageCommitment = new StorageCommitmentService({
      archive: options.archive, logger: this.logger, settings: options.settings, timeouts: outgoingTimeouts,
    });
    this.mpps = new MppsService(options.archive);
    const retrieve = new RetrieveHandlers({
      archive: options.archive,
      aeTitle,
      peers: () => options.settings().peers,
      cloud: () => options.cloud?.()?.readThrough,
      timeouts: outgoingTimeouts,
    });
    this.queryRetrieve = {
      find: (scp, info, request, send) => request.getAffectedSopClassUid() === WORKFLOW_SOP_CLASSES.modalityWorklistFind
        ? handleWorklistFind(options.archive, scp, info, request, send)
        : handleFind({ archive: options.archive, federated: () => options.cloud?.()?.federatedSearch }, aeTitle, scp, info, request, send),
      move: (scp, info, request, send) => retrieve.move(scp, info, request, send),
      get: (scp, info, request, send) => retrieve.get(scp, info, request, send),
    };
  }

  /** Open, accepted associations. */
  get openAssociations(): number {
    return this.associations.size;
  }

  async start(): Promise<string[]> {
    const settings = this.options.settings();
    const { host, port, tls } = settings.dimse;
    const lines: string[] = [];
    const plain = createTcpServer((socket) => this.connected(socket));
    await this.listen(plain, host, port);
    lines.push(`DIMSE listening on ${host}:${this.portOf(plain)} as ${settings.aeTitle}`);
    if (tls.enabled) {
      const [key, cert, ca] = await Promise.all([
        readFile(tls.keyFile), readFile(tls.certFile), tls.caFile ? readFile(tls.caFile) : Promise.resolve(undefined),
      ]);
      const secure = createTlsServer(
        { key, cert, ca, requestCert: tls.requireClientCertificate, rejectUnauthorized: tls.requireClientCertificate, minVersion: 'TLSv1.2' },
        (socket: TLSSocket) => this.connected(socket),
      );
      secure.on('tlsClientError', (error, socket) =>
        this.logger.warn({ event: 'tls-handshake-failed', peer: `${socket.remoteAddress}:${socket.remotePort}`, reason: error.message }, 'DICOM TLS handshake failed'));
      await this.listen(secure, host, tls.port);
      lines.push(`DICOM TLS listening on ${host}:${this.portOf(secure)} as ${settings.aeTitle}`);
    }
    this.storageCommitment.start();
    return lines;
  }

  /** The port actually bound (differs from settings when 0 was asked for). */
  boundPorts(): number[] {
    return this.servers.map((server) => this.portOf(server));
  }

  /**
   * No new connections. Each association is aborted as soon as no C-STORE is in flight on it, so every
   * store received in full is answered first; any still busy after STOP_GRACE_MS is aborted as well (its
   * sender gets no success, so nothing it was told is stored is lost). Waiting for peers to release would
   * let an idle one hold the stop for as long as it likes.
   */
  async stop(): Promise<void> {
    const closed = Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    this.servers.length = 0;
    // Reports in flight end with the associations below; an unanswered one stays open in the index for the next start.
    const reportsDone = this.storageCommitment.stop();
    await Promise.race([
      Promise.all([...this.scps].map(async (scp) => {
        await scp.settle();
        scp.abortForStop();
      })),
      new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref()),
    ]);
    for (const scp of this.scps) scp.abortForStop();
    await Promise.race([reportsDone, new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref())]);
    await closed;
  }

  private connected(socket: Socket): void {
    const settings = this.options.settings();
    if (this.dropped > 0) {
      this.logger.info({ event: 'connection-limit-cleared', dropped: this.dropped }, 'accepting connections again');
      this.dropped = 0;
    }
    for (const server of this.servers) server.maxConnections = connectionLimit(settings.dimse.maxAssociations);
    socket.setNoDelay(true);
    const scp = new EdgeScp(
      socket,
      {
        associationTimeout: settings.dimse.artimTimeoutMs,
        pduTimeout: settings.dimse.dimseIdleTimeoutMs,
        connectTimeout: settings.dimse.associationTimeoutMs,
      },
      {
        archive: this.options.archive,
        logger: this.logger,
        registry: this.associations,
        queryRetrieve: this.queryRetrieve,
        storageCommitment: this.storageCommitment,
        mpps: this.mpps,
        policy: () => {
          const current = this.options.settings();
          return { aeTitle: current.aeTitle, ...current.dimse };
        },
      },
    );
    this.scps.add(scp);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.scps.delete(scp);
    });
  }

  /** Connections open on the listeners now, associated or not. */
  get openConnections(): number {
    // One EdgeScp per connection, dropped when its socket closes.
    return this.scps.size;
  }

  private limitConnections(server: NetServer): void {
    server.maxConnections = connectionLimit(this.options.settings().dimse.maxAssociations);
    // Node closes a connection past maxConnections at once and tells us here.
    server.on('drop', (data) => {
      if (this.dropped++ > 0) return;
      this.logger.warn(
        { event: 'connection-limit-reached', peer: `${data?.remoteAddress ?? '?'}:${data?.remotePort ?? '?'}`, limit: server.maxConnections },
        'too many connections; closing new ones at once',
      );
    });
  }

  private listen(server: NetServer, host: string, port: number): Promise<void> {
    this.limitConnections(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        this.servers.push(server);
        resolve();
      });
    });
  }

  private portOf(server: NetServer): number {
    const address = server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }
}
