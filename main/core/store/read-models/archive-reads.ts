/**
 * Everything the rooms above the store read of the index and outbox (Archive.reads): web/'s routes, dimse/'s
 * queries and retrieves, and the shell's tray. Each module holds the SQL of one subject, prepared once.
 */
import type { Db } from '../database.js';
import { failureReads, type FailureReads } from './failure-reads.js';
import { indexReads, type IndexReads } from './index-reads.js';
import { metadataReads, type MetadataReads } from './metadata-reads.js';
import { outboxReads, type OutboxReads } from './outbox-reads.js';
import { syncReads, type SyncReads } from './sync-reads.js';

export type ArchiveReads = IndexReads & MetadataReads & OutboxReads & FailureReads & SyncReads;

export function archiveReads(db: Db): ArchiveReads {
  return { ...indexReads(db), ...metadataReads(db), ...outboxReads(db), ...failureReads(db), ...syncReads(db) };
}
