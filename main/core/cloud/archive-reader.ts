/**
 * Reading from the clinic's archive destination (settings: `archive: true`): QIDO-RS search, WADO-RS
 * retrieve as a stream of parts, metadata, the change feed, and its UPS-RS worklist (search, and the state
 * changes of the workitems this appliance performs), over one connection pool and with the destination's
 * authentication. Nothing here writes to the index; callers keep what they read
 * (store/cloud-index.ts, Archive.ingest with origin 'cloud').
 */
import type { AuthProvider } from '../forward/auth.js';
import type { DestinationSettings } from '../contract/settings.js';
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { ArchiveClient, type ArchiveClientOptions } from './archive-client.js';
import {
  latestChange, readChangeFeed, readChangesSince,
  type ChangeFeedAnswer, type ChangeFeedCursor, type ChangeFeedEntry, type ChangeFeedQuery,
} from './change-feed.js';
import { retrieveMetadata } from './metadata.js';
import { searchArchive, type QidoSearch } from './qido.js';
import { retrieveArchive, type ArchivePart, type RetrieveOptions, type RetrieveTarget } from './wado.js';
import { changeWorkitemState, searchWorkitems, updateWorkitem, type StateChangeAnswer, type WorkitemSearch } from './workitems.js';
import type { DicomJson } from '../dicom/json-model.js';
import type { UpsTargetState } from '../store/ups-state-changes.js';

export type ArchiveReaderOptions = ArchiveClientOptions & {
  /** The destination's name, for logs and messages of callers. */
  name?: string;
};

export class ArchiveReader {
  readonly name: string;
  private readonly client: ArchiveClient;

  constructor(options: ArchiveReaderOptions) {
    this.client = new ArchiveClient(options);
    this.name = options.name ?? this.client.baseUrl;
  }

  /**
   * A reader for a destination, with the AuthProvider forwarding uses for it (so a device-code sign-in or a
   * cached token serves both), and its request timeout as the idle limit.
   */
  static forDestination(destination: DestinationSettings, auth: AuthProvider, options: Partial<ArchiveClientOptions> = {}): ArchiveReader {
    return new ArchiveReader({
      name: destination.name, baseUrl: destination.baseUrl, auth, idleTimeoutMs: destination.requestTimeoutMs,
      connections: destination.maxConcurrentRequests * 2, ...options,
    });
  }

  get baseUrl(): string {
    return this.client.baseUrl;
  }

  search(search: QidoSearch): Promise<ReceivedDicomJson[]> {
    return searchArchive(this.client, search);
  }

  retrieve(target: RetrieveTarget, options?: RetrieveOptions): AsyncGenerator<ArchivePart> {
    return retrieveArchive(this.client, target, options);
  }

  metadata(target: RetrieveTarget, options?: RetrieveOptions): Promise<ReceivedDicomJson[]> {
    return retrieveMetadata(this.client, target, options);
  }

  changeFeed(query?: ChangeFeedQuery): Promise<ChangeFeedAnswer<ChangeFeedEntry[]>> {
    return readChangeFeed(this.client, query);
  }

  latestChange(query?: Pick<ChangeFeedQuery, 'includeMetadata' | 'timeoutMs' | 'signal'>): Promise<ChangeFeedAnswer<ChangeFeedEntry | undefined>> {
    return latestChange(this.client, query);
  }

  changesSince(cursor: ChangeFeedCursor, options: Parameters<typeof readChangesSince>[2]) {
    return readChangesSince(this.client, cursor, options);
  }

  /** UPS-RS: the archive's workitems that match (cloud/workitems.ts). */
  searchWorkitems(search: WorkitemSearch): Promise<ReceivedDicomJson[]> {
    return searchWorkitems(this.client, search);
  }

  /** UPS-RS: Update Workitem with the owner's Transaction UID. */
  updateWorkitem(workitemUid: string, transactionUid: string, dataset: DicomJson, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<void> {
    return updateWorkitem(this.client, workitemUid, transactionUid, dataset, options);
  }

  /** UPS-RS: Change Workitem State with the owner's Transaction UID. */
  changeWorkitemState(workitemUid: string, state: UpsTargetState, transactionUid: string, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<StateChangeAnswer> {
    return changeWorkitemState(this.client, workitemUid, state, transactionUid, options);
  }

  close(): Promise<void> {
    return this.client.close();
  }
}

export { ArchiveReadError, type ArchiveFailureKind } from './archive-errors.js';
export type { ArchivePart, RetrieveTarget, RetrieveOptions } from './wado.js';
export type { QidoSearch, QidoLevel } from './qido.js';
export {
  decodeCursor, encodeCursor, FEED_START,
  type ChangeFeedAnswer, type ChangeFeedCursor, type ChangeFeedEntry, type ChangeFeedQuery,
} from './change-feed.js';
