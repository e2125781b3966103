import type { Logger } from 'pino';
import type { CloudIndex } from './cloud-index.js';

/** What eviction needs of the archive: the candidates by access, and the one way to drop a local copy. */
export interface EvictableArchive {
  readonly cloud: Pick<CloudIndex, 'evictionCandidates' | 'localInstances'>;
  evictInstance(sopInstanceUid: string): Promise<number>;
}

/**
 * Frees at least `neededBytes` by dropping the local copies of the least recently used studies that every
 * destination has confirmed (CloudIndex.evictionCandidates: pinned studies and any study with an undelivered
 * instance are never chosen). A copy the archive destination holds keeps its rows as cloud-only; any other is
 * removed. Whole studies go, so a study is never left half local. Returns the bytes freed.
 */
export async function evictDelivered(archive: EvictableArchive, neededBytes: number, logger: Logger): Promise<number> {
  let freed = 0;
  const wanted = Math.max(neededBytes, 1);
  for (const candidate of archive.cloud.evictionCandidates(1000)) {
    if (freed >= wanted) break;
    let studyFreed = 0;
    for (const instance of archive.cloud.localInstances(candidate.studyUid)) studyFreed += await archive.evictInstance(instance.sopInstanceUid);
    freed += studyFreed;
    logger.info({ event: 'evicted', studyUid: candidate.studyUid, sizeBytes: studyFreed, lastAccessAt: candidate.lastAccessAt },
      'least recently used delivered study evicted');
  }
  return freed;
}
