import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { assertUid } from '../dicom/uid.js';
import { TEMP_SUFFIX } from './temp-file.js';

/**
 * How many folders incoming files are spooled into. Creating a file holds its folder's lock while ext4
 * looks for a free inode, which can take long; with one folder, concurrent receivers spin on that lock.
 */
const TEMP_SHARDS = 8;

/** Where instance files live. UIDs are validated before they become path components. */
export class ArchivePaths {
  readonly root: string;
  readonly tempDir: string;
  /** Subfolders of `tempDir`; incoming files are spread over them. */
  readonly tempShards: readonly string[];
  readonly databaseFile: string;
  /** Rendered thumbnails (web/thumbnail-cache.ts): outside `root`, so recovery never takes them for instances. */
  readonly thumbnailCacheDir: string;
  private nextShard = 0;

  constructor(readonly dataDir: string) {
    this.root = join(dataDir, 'archive');
    this.tempDir = join(dataDir, 'archive', '.incoming');
    this.tempShards = Array.from({ length: TEMP_SHARDS }, (_, n) => join(this.tempDir, String(n)));
    this.databaseFile = join(dataDir, 'index.sqlite');
    this.thumbnailCacheDir = join(dataDir, 'cache', 'thumbnails');
  }

  /** The temp folder for the next incoming file, in turn. */
  nextTempDir(): string {
    this.nextShard = (this.nextShard + 1) % this.tempShards.length;
    return this.tempShards[this.nextShard]!;
  }

  /**
   * A new path for bytes kept only until they are ingested (a part of the archive's answer, cloud/part-spool.ts):
   * a temp file, so recovery removes it should a crash leave it behind.
   */
  spoolFile(): string {
    return join(this.nextTempDir(), `${randomUUID()}.spool${TEMP_SUFFIX}`);
  }

  /** Relative to `root`, as stored in the index. */
  relativeInstancePath(studyUid: string, seriesUid: string, sopInstanceUid: string): string {
    assertUid('StudyInstanceUID', studyUid);
    assertUid('SeriesInstanceUID', seriesUid);
    assertUid('SOPInstanceUID', sopInstanceUid);
    return join(studyUid, seriesUid, `${sopInstanceUid}.dcm`);
  }

  absolute(relativePath: string): string {
    return join(this.root, relativePath);
  }
}
