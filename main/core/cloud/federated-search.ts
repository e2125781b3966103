/**
 * Federated query for QIDO-RS (web/) and C-FIND (dimse/): the local query and the archive's QIDO-RS search
 * at the same level run side by side; the archive's part has a time limit (cloud.federation.timeoutMs).
 * Its answers are kept in the index as cloud rows, so a repeated or offline query finds them, and the
 * result is then the index's answer to the same request: local and archive matches merged, each UID once,
 * local rows keeping their own attributes, InstanceAvailability ONLINE or NEARLINE as the rows say.
 * When the archive's part is missing (off, offline, slow, refused) the local matches come back anyway,
 * with the reason.
 */
import type { Logger } from 'pino';
import type { CloudSettings } from '../contract/settings.js';
import type { Archive } from '../store/archive.js';
import { buildQuery } from '../store/query.js';
import type { QueryMatch, QueryRequest } from '../store/query-types.js';
import { ArchiveReadError } from './archive-errors.js';
import type { ArchiveReader } from './archive-reader.js';
import { QIDO_LEVEL, toQidoSearch, withScope } from './federated-query.js';

export type { QueryMatch, QueryRequest } from '../store/query-types.js';

/** What became of the archive's part of a query. */
export type ArchiveOutcome =
  | { state: 'included'; /** matches the archive answered */ matches: number }
  /** Not asked: federation is off in settings, or no destination is the archive. */
  | { state: 'off'; reason: 'disabled' | 'no-archive' }
  | { state: 'missing'; reason: 'timeout' | 'offline' | 'auth' | 'error'; message: string };

export interface FederatedResult {
  matches: QueryMatch[];
  archive: ArchiveOutcome;
}

export interface FederatedSearchOptions {
  archive: Archive;
  reader: () => ArchiveReader | undefined;
  settings: () => { cloud: Pick<CloudSettings, 'federation'> };
  logger: Logger;
}

export class FederatedSearch {
  private readonly log: Logger;

  constructor(private readonly options: FederatedSearchOptions) {
    this.log = options.logger.child({ component: 'federated-search' });
  }

  /**
   * Local and archive matches of `request`. Throws InvalidMatchKeyError or RangeError for a bad request,
   * before the archive is asked; the caller's `signal` aborts with its reason. Any failure of the archive's
   * part is reported in `archive`, never thrown.
   */
  async search(request: QueryRequest, options: { signal?: AbortSignal } = {}): Promise<FederatedResult> {
    buildQuery(request); // a bad key or count fails here, and nothing is sent
    const { federation } = this.options.settings().cloud;
    const reader = federation.enabled ? this.options.reader() : undefined;
    if (!reader) {
      return { matches: this.options.archive.reads.query(request), archive: { state: 'off', reason: federation.enabled ? 'no-archive' : 'disabled' } };
    }
    const search = { ...toQidoSearch(request), timeoutMs: federation.timeoutMs, signal: options.signal };
    const started = Date.now();
    const answer = reader.search(search).then(
      (datasets) => ({ datasets }),
      (error: unknown) => ({ error }),
    );
    // The archive's request is on its way; the local matches are ready before it answers.
    const local = this.options.archive.reads.query(request);
    const outcome = await answer;
    if ('error' in outcome) {
      if (options.signal?.aborted) throw options.signal.reason;
      const archive = missing(outcome.error, federation.timeoutMs);
      // The caller (C-FIND, QIDO) logs the warning, with its peer: one line per query that lacks the archive's part.
      this.log.debug({ event: 'federated-search-archive-missing', queryLevel: request.level, keys: request.keys, archive: reader.name,
        reason: archive.reason, message: archive.message, localMatches: local.length, ms: Date.now() - started }, 'the archive\'s part of a query is missing');
      return { matches: local, archive };
    }
    const kept = this.options.archive.cloud.upsert(QIDO_LEVEL[request.level], withScope(search, outcome.datasets));
    if (kept.skipped.length > 0) {
      this.log.warn({ event: 'federated-search-skipped', archive: reader.name, skipped: kept.skipped.slice(0, 10) }, 'archive answers without valid UIDs were left out');
    }
    const matches = this.options.archive.reads.query(request);
    this.log.debug({ event: 'federated-search', queryLevel: request.level, keys: request.keys, archive: reader.name,
      archiveMatches: outcome.datasets.length, localMatches: local.length, matches: matches.length, ms: Date.now() - started }, 'federated query');
    return { matches, archive: { state: 'included', matches: outcome.datasets.length } };
  }
}

function missing(error: unknown, timeoutMs: number): Extract<ArchiveOutcome, { state: 'missing' }> {
  if (error instanceof ArchiveReadError) {
    if (error.details.code === 'TIMEOUT') return { state: 'missing', reason: 'timeout', message: `the archive did not answer within ${timeoutMs} ms` };
    if (error.kind === 'offline') return { state: 'missing', reason: 'offline', message: `the archive is unreachable: ${error.message}` };
    if (error.kind === 'auth') return { state: 'missing', reason: 'auth', message: `the archive refused our sign-in: ${error.message}` };
    return { state: 'missing', reason: 'error', message: error.message };
  }
  return { state: 'missing', reason: 'error', message: (error as Error)?.message ?? String(error) };
}
