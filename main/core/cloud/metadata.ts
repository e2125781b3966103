/** WADO-RS metadata of a study, series or instance from the archive destination: DICOM JSON, no pixel data. */
import type { ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { Deadline, parseDatasets, type ArchiveClient } from './archive-client.js';
import { retrievePath, type RetrieveOptions, type RetrieveTarget } from './wado.js';

/**
 * One DICOM JSON dataset per instance of the target. Rejects with an ArchiveReadError: not-found (404),
 * offline (including the time limit, which here covers the whole answer), auth, or other.
 */
export async function retrieveMetadata(client: ArchiveClient, target: RetrieveTarget, options: RetrieveOptions = {}): Promise<ReceivedDicomJson[]> {
  const url = client.url(`${retrievePath(target)}/metadata`);
  const what = `WADO-RS metadata of ${target.sopInstanceUid ?? target.seriesUid ?? target.studyUid}`;
  const deadline = new Deadline(options.timeoutMs, options.signal);
  try {
    const response = await client.get(url, 'application/dicom+json', what, deadline);
    if (response.status !== 200) throw await client.failure(response, what);
    const text = await client.text(response, what, deadline);
    return parseDatasets(text, what, url);
  } finally {
    deadline.clear();
  }
}
