import { join } from 'node:path';
import { assertUid } from '../dicom/uid.js';

/** Where instance files live. UIDs are validated before they become path components. */
export class ArchivePaths {
  readonly root: string;
  readonly tempDir: string;
  readonly databaseFile: string;

  constructor(readonly dataDir: string) {
    this.root = join(dataDir, 'archive');
    this.tempDir = join(dataDir, 'archive', '.incoming');
    this.databaseFile = join(dataDir, 'index.sqlite');
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
