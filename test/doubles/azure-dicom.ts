// Azure Health Data Services DICOM service (v2 API) double on 127.0.0.1, after the v2
// conformance statement and microsoft/dicom-server: STOW-RS (POST, and PUT upsert), QIDO-RS,
// WADO-RS (instances and metadata), DELETE, the change feed and the worklist (UPS-RS, azure-dicom-workitems.ts)
// under /v2 and /v2/partitions/{name}; an optional bearer-token check; fault
// modes switchable at run time. It records every request and keeps every stored instance's bytes,
// so a test judges delivery by what the upstream holds.
import type http from 'node:http';
import { checkBearer, type BearerAuthOptions } from './bearer-auth.js';
import { drain, problem, type DicomRequestRecord, type Exchange, type InstanceOutcome } from './azure-dicom-exchange.js';
import { FaultState, type Fault } from './azure-dicom-faults.js';
import { handleChangeFeed } from './azure-dicom-changefeed.js';
import { handleMetadata, handleRetrieve, handleSearch, type SearchLevel } from './azure-dicom-read.js';
import { DEFAULT_PARTITION, InstanceStore, type ChangeRecord, type StoredInstance } from './azure-dicom-store.js';
import { handleStow } from './azure-dicom-stow.js';
import { handleWorkitems, WorkitemStore } from './azure-dicom-workitems.js';
import { readInstanceInfo } from './dicom-instance-info.js';
import { listenLoopback, sendEmpty, sendJson, type LoopbackServer } from './http-server.js';

export type { BearerAuthOptions } from './bearer-auth.js';
export type { DicomRequestRecord, InstanceOutcome } from './azure-dicom-exchange.js';
export type { Fault } from './azure-dicom-faults.js';
export type { ChangeRecord, StoredInstance } from './azure-dicom-store.js';
export type { ChangeFeedEntryJson } from './azure-dicom-changefeed.js';
export { DEFAULT_PARTITION } from './azure-dicom-store.js';
export type { InjectedAnswer, StateChangeRecord, UpsState } from './azure-dicom-workitems.js';

export interface AzureDicomDoubleOptions {
  /** Check bearer tokens, e.g. `{ jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId }`. */
  auth?: BearerAuthOptions;
}

export class AzureDicomDouble {
  /** Every request, in arrival order (records are updated as the exchange ends). */
  readonly requests: DicomRequestRecord[] = [];
  private readonly store = new InstanceStore();
  /** The worklist (UPS-RS), one for the service and its partitions: seed workitems, read their state, inject answers. */
  readonly workitems = new WorkitemStore();
  private readonly faults = new FaultState();
  private auth: BearerAuthOptions | undefined;
  private server?: LoopbackServer;
  private port = 0;

  constructor(options: AzureDicomDoubleOptions = {}) {
    this.auth = options.auth;
  }

  static async start(options: AzureDicomDoubleOptions = {}): Promise<AzureDicomDouble> {
    return new AzureDicomDouble(options).start();
  }

  /** Listens on an ephemeral port (the same one again after a 'refuse' fault). */
  async start(): Promise<this> {
    this.server = await listenLoopback((req, res) => this.handle(req, res), this.port);
    this.port = this.server.port;
    this.server.onConnection = () => this.faults.active?.kind === 'down';
    return this;
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = undefined;
  }

  /** `http://127.0.0.1:PORT` */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  /** `http://127.0.0.1:PORT/v2`: the service URL a client is configured with. */
  get baseUrl(): string {
    return `${this.origin}/v2`;
  }
  /** `http://127.0.0.1:PORT/v2/partitions/NAME` */
  partitionUrl(name: string): string {
    return `${this.baseUrl}/partitions/${encodeURIComponent(name)}`;
  }

  // ---- switches ----------------------------------------------------------------------------

  /** Turns the bearer check on (with options) or off (undefined). */
  setAuth(auth: BearerAuthOptions | undefined): void {
    this.auth = auth;
  }

  /** With the bearer check on: a token whose `roles` lacks this value gets 403 (undefined: none needed). */
  setRequiredRole(role: string | undefined): void {
    if (!this.auth) throw new Error('setRequiredRole needs auth to be configured');
    this.auth = { ...this.auth, requiredRole: role };
  }

  /** Replaces the active fault (one at a time; undefined clears). 'down' also cuts open keep-alive connections. */
  async setFault(fault: Fault | undefined): Promise<void> {
    const wasRefusing = this.isRefusing();
    this.faults.set(fault);
    const refusing = this.isRefusing();
    if (refusing && !wasRefusing) {
      await this.server?.close(); // nothing listens: connections are refused
      this.server = undefined;
    } else if (!refusing && wasRefusing) {
      await this.start(); // listen again on the same port
    }
    if (fault?.kind === 'down') this.server?.destroySockets();
  }

  clearFault(): Promise<void> {
    return this.setFault(undefined);
  }

  /** The active fault; undefined once cleared or once its `times` ran out. */
  get activeFault(): Fault | undefined {
    return this.faults.active;
  }

  // ---- what the upstream holds and saw -----------------------------------------------------

  /** Instances now stored (all partitions unless one is named). */
  storedInstances(partition?: string): StoredInstance[] {
    return this.store.list(partition);
  }

  storedInstance(sopUid: string, partition = DEFAULT_PARTITION): StoredInstance | undefined {
    return this.store.get(partition, sopUid);
  }

  /** How many times a part with this SOP Instance UID arrived complete in a store request, whatever its outcome. */
  receiveCount(sopUid: string, partition?: string): number {
    return this.outcomes(sopUid, partition).length;
  }

  /** How many times this SOP instance was written (created, or replaced by PUT). */
  storeCount(sopUid: string, partition?: string): number {
    return this.outcomes(sopUid, partition).filter((o) => o.outcome !== 'failed').length;
  }

  /** The change feed as recorded, every partition, in Sequence order. */
  changes(): readonly ChangeRecord[] {
    return this.store.changes;
  }

  /** Requests of one kind (e.g. 'retrieve' to count WADO-RS fetches), in arrival order. */
  requestsOf(kind: DicomRequestRecord['kind']): DicomRequestRecord[] {
    return this.requests.filter((r) => r.kind === kind);
  }

  /** Store requests (POST/PUT …/studies[/{study}]) in arrival order. */
  storeRequests(): DicomRequestRecord[] {
    return this.requests.filter((r) => r.kind === 'store');
  }

  /** Puts an instance in the archive directly, as if stored before (e.g. to provoke 45070); the change feed records it. */
  seedInstance(bytes: Buffer, partition = DEFAULT_PARTITION): StoredInstance {
    const { studyUid, seriesUid, sopUid, sopClassUid, ...rest } = readInstanceInfo(bytes);
    if (!studyUid || !seriesUid || !sopUid || !sopClassUid) throw new Error('instance lacks UIDs');
    return this.store.put(partition, { ...rest, studyUid, seriesUid, sopUid, sopClassUid }, bytes);
  }

  /** Forgets stored instances and recorded requests (fault and auth settings stay). */
  reset(): void {
    this.store.clear();
    this.workitems.clear();
    this.requests.length = 0;
  }

  // ---- HTTP --------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const method = req.method ?? 'GET';
    const rec: DicomRequestRecord = {
      seq: this.requests.length + 1,
      method,
      path: url.pathname,
      query: url.search,
      partition: DEFAULT_PARTITION,
      kind: 'other',
      status: 'pending',
      bytesReceived: 0,
      instances: [],
      auth: this.auth ? 'ok' : 'off',
    };
    this.requests.push(rec);
    const ex: Exchange = {
      req,
      res,
      rec,
      origin: this.origin,
      prefix: '/v2',
      reply: (status, body, headers = {}, contentType) => {
        rec.status = status;
        if (body === undefined) sendEmpty(res, status, headers);
        else sendJson(res, status, body, headers, contentType);
      },
    };
    const fail = async (status: number, code: string, message: string) => {
      await drain(ex);
      ex.reply(status, problem(code, message));
    };

    let segments: string[];
    try {
      segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    } catch {
      return fail(400, 'BadRequest', 'Malformed path.');
    }
    if (segments[0] !== 'v2') return fail(404, 'NotFound', 'Only the v2 API is served.');
    segments = segments.slice(1);
    if (segments[0] === 'partitions') {
      const name = segments[1];
      if (!name || !/^[A-Za-z0-9._-]{1,64}$/.test(name)) return fail(400, 'BadRequest', 'Invalid partition name.');
      rec.partition = name;
      ex.prefix = `/v2/partitions/${name}`;
      segments = segments.slice(2);
    }
    const changeFeed = segments[0] === 'changefeed' && method === 'GET' && (segments.length === 1 || (segments.length === 2 && segments[1] === 'latest'));
    const metadata = method === 'GET' && segments.length > 1 && segments.at(-1) === 'metadata';
    if (metadata) segments = segments.slice(0, -1);
    const [s0, study, s2, series, s4, instance, ...rest] = segments;
    const last = segments.at(-1);
    rec.kind = s0 === 'workitems'
      ? 'workitem'
      : changeFeed
      ? 'changefeed'
      : metadata
        ? 'metadata'
        : s0 === 'studies' && (method === 'POST' || method === 'PUT') && segments.length <= 2
          ? 'store'
          : method === 'GET' && (last === 'studies' || last === 'series' || last === 'instances')
            ? 'search'
            : method === 'GET'
              ? 'retrieve'
              : method === 'DELETE'
                ? 'delete'
                : 'other';

    if (this.auth) {
      const outcome = await checkBearer(req.headers.authorization, this.auth);
      if (!outcome.ok) {
        rec.auth = outcome.reason;
        await drain(ex);
        return ex.reply(outcome.status, outcome.body, outcome.headers);
      }
    }

    if (rec.kind === 'workitem') return handleWorkitems(ex, this.workitems, segments, url);
    if (rec.kind === 'store') {
      return handleStow(ex, { partition: rec.partition, studyUid: study, upsert: method === 'PUT' }, this.store, this.faults);
    }
    await drain(ex);
    if (rec.kind === 'changefeed') {
      const hold = this.faults.forChangeFeedRequest();
      if (hold) await hold;
      if (res.destroyed) return; // the client went away while the feed was held
      const partition = ex.prefix === '/v2' ? undefined : rec.partition;
      return handleChangeFeed(ex, this.store, url.searchParams, segments.length === 2, partition);
    }
    if (rec.kind === 'search') {
      const level = last as SearchLevel;
      const shape =
        segments.length === 1 ? 'all' : segments.length === 3 && s0 === 'studies' && level !== 'studies' ? 'study' : segments.length === 5 && s0 === 'studies' && s2 === 'series' && level === 'instances' ? 'series' : undefined;
      if (!shape) return ex.reply(404, problem('NotFound', 'Unknown resource.'));
      return handleSearch(ex, this.store, level, url.searchParams, shape === 'all' ? undefined : study, shape === 'series' ? series : undefined);
    }
    const resource =
      s0 === 'studies' && study && rest.length === 0 && (s2 === undefined || (s2 === 'series' && series)) && (s4 === undefined || (s4 === 'instances' && instance));
    if (!resource) return ex.reply(rec.kind === 'other' ? 405 : 404, problem('NotFound', 'Unknown resource.'));
    if (rec.kind === 'metadata') return handleMetadata(ex, this.store, study, series, instance);
    if (rec.kind === 'retrieve') {
      const fault = this.faults.forRetrieveRequest();
      if (fault && 'delayMs' in fault) await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
      return handleRetrieve(ex, this.store, study, series, instance, fault && 'afterParts' in fault ? fault : undefined);
    }
    if (rec.kind === 'delete') {
      const n = this.store.delete(rec.partition, study, series, instance);
      return n ? ex.reply(204) : ex.reply(404, problem('NotFound', 'The specified resource was not found.'));
    }
    return ex.reply(405, problem('MethodNotAllowed', `${method} is not supported here.`));
  }

  private outcomes(sopUid: string, partition?: string): InstanceOutcome[] {
    return this.storeRequests()
      .filter((r) => partition === undefined || r.partition === partition)
      .flatMap((r) => r.instances)
      .filter((o) => o.sopUid === sopUid);
  }

  private isRefusing(): boolean {
    const active = this.faults.active;
    return active?.kind === 'down' && active.mode === 'refuse';
  }
}
