/**
 * Which representation an Accept header asks of a study, series or instance (PS3.18 10.4): its Part 10
 * instances (application/dicom) or their bulk data as octet streams (10.4.3.3.5, wado-bulk.ts).
 */
import type { MediaType } from '../multipart/media-type.js';

export const OCTET_STREAM = 'application/octet-stream';

/**
 * Whether an Accept header for a study, series or instance asks for its bulk data rather than its Part 10
 * instances: the first range that names either decides, as for every other choice of representation.
 */
export function wantsBulkdata(accept: MediaType[]): boolean {
  for (const range of accept) {
    if (range.type === 'multipart/related') {
      const partType = (range.params.type ?? 'application/dicom').toLowerCase();
      if (partType === OCTET_STREAM) return true;
      if (partType === 'application/dicom') return false;
    } else if (range.type === 'application/dicom' || range.type === '*/*' || range.type === 'multipart/*') {
      return false;
    }
  }
  return false;
}
