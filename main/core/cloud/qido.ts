/** QIDO-RS searches of the archive destination at study, series or instance level (PS3.18 10.6). */
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { Deadline, parseDatasets, type ArchiveClient } from './archive-client.js';

export type QidoLevel = 'study' | 'series' | 'instance';

export interface QidoSearch {
  level: QidoLevel;
  /** Series and instances of one study (…/studies/{uid}/series, …/studies/{uid}/instances). */
  studyUid?: string;
  /** Instances of one series of `studyUid` (…/studies/{uid}/series/{uid}/instances). */
  seriesUid?: string;
  /** Matching keys by keyword or tag in their QIDO string form ('DOE*', '20240101-20241231'); a list is sent comma-separated. */
  match?: Readonly<Record<string, string | readonly string[]>>;
  /** Extra attributes to return: keywords or tags, or 'all'. */
  includeFields?: readonly string[] | 'all';
  fuzzy?: boolean;
  /** At most this many results in all (sent as limit when not paging). */
  limit?: number;
  offset?: number;
  /** Ask page after page of this size (limit/offset) until a short page or `limit` results. */
  pageSize?: number;
  /** For the whole search, every page included. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const PATH: Record<QidoLevel, string> = { study: 'studies', series: 'series', instance: 'instances' };

function searchPath(search: QidoSearch): string {
  if (search.seriesUid !== undefined && (search.studyUid === undefined || search.level !== 'instance')) {
    throw new RangeError('a series scope needs a study scope and instance level');
  }
  if (search.studyUid !== undefined && search.level === 'study') throw new RangeError('a study-level search cannot be scoped to a study');
  let path = '';
  if (search.studyUid !== undefined) path += `/studies/${encodeURIComponent(search.studyUid)}`;
  if (search.seriesUid !== undefined) path += `/series/${encodeURIComponent(search.seriesUid)}`;
  return `${path}/${PATH[search.level]}`;
}

function queryOf(search: QidoSearch, limit: number | undefined, offset: number | undefined): URLSearchParams {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(search.match ?? {})) query.set(key, typeof value === 'string' ? value : value.join(','));
  if (search.includeFields === 'all') query.set('includefield', 'all');
  else for (const field of search.includeFields ?? []) query.append('includefield', field);
  if (search.fuzzy) query.set('fuzzymatching', 'true');
  if (limit !== undefined) query.set('limit', String(limit));
  if (offset !== undefined && offset > 0) query.set('offset', String(offset));
  return query;
}

/**
 * The archive's matches as DICOM JSON datasets; [] for 204 (and for a 404 of a scoped search: no such study
 * or series there). Rejects with ArchiveReadError: offline (including the time limit), auth, not-found (no
 * QIDO-RS service at the base URL), other (another status, or an answer that is not DICOM JSON).
 */
export async function searchArchive(client: ArchiveClient, search: QidoSearch): Promise<ReceivedDicomJson[]> {
  const path = searchPath(search);
  const what = `QIDO-RS search of ${PATH[search.level]}`;
  const deadline = new Deadline(search.timeoutMs, search.signal);
  try {
    if (search.pageSize === undefined) return await searchPage(client, path, queryOf(search, search.limit, search.offset), what, deadline, search);
    const results: ReceivedDicomJson[] = [];
    for (let offset = search.offset ?? 0; ; ) {
      const wanted = search.limit === undefined ? search.pageSize : Math.min(search.pageSize, search.limit - results.length);
      if (wanted <= 0) return results;
      const page = await searchPage(client, path, queryOf(search, wanted, offset), what, deadline, search);
      results.push(...page);
      if (page.length < wanted) return results;
      offset += page.length;
    }
  } finally {
    deadline.clear();
  }
}

async function searchPage(client: ArchiveClient, path: string, query: URLSearchParams, what: string, deadline: Deadline, search: QidoSearch): Promise<ReceivedDicomJson[]> {
  const url = client.url(path, query);
  const response = await client.get(url, 'application/dicom+json', what, deadline);
  if (response.status === 204) {
    await response.body.dump();
    return [];
  }
  if (response.status === 404 && search.studyUid !== undefined) {
    await response.body.dump();
    return [];
  }
  if (response.status !== 200) throw await client.failure(response, what);
  const text = await client.text(response, what, deadline);
  if (text.trim() === '') return [];
  return parseDatasets(text, what, url);
}
