/**
 * Where background sync with the archive got to, as the text kept in the index's change_feed_cursors row of
 * the archive destination: a change-feed cursor (change-feed.ts, version 2), or, for an archive without a
 * change feed, the date of the last QIDO-by-date poll.
 */
import { decodeCursor, encodeCursor, type ChangeFeedCursor } from './change-feed.js';

export type SyncPosition =
  | { kind: 'feed'; cursor: ChangeFeedCursor }
  /** The last poll asked for studies from a day before `polledOn` (YYYYMMDD, the appliance's local date). */
  | { kind: 'qido-date'; polledOn: string };

export function encodePosition(position: SyncPosition): string {
  if (position.kind === 'feed') return encodeCursor(position.cursor);
  return JSON.stringify({ v: 'qido-date', polledOn: position.polledOn });
}

/** A saved position; text that is neither kind is an error (never silently a fresh start). */
export function decodePosition(text: string): SyncPosition {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'feed', cursor: decodeCursor(text) }; // decodeCursor names the problem
  }
  const record = value as Record<string, unknown>;
  if (record?.v === 'qido-date') {
    if (typeof record.polledOn !== 'string' || !/^\d{8}$/.test(record.polledOn)) {
      throw new RangeError(`the QIDO poll position ${JSON.stringify(text.slice(0, 80))} has no date`);
    }
    return { kind: 'qido-date', polledOn: record.polledOn };
  }
  return { kind: 'feed', cursor: decodeCursor(text) };
}

/** A local date as a DICOM DA value. */
export function dicomDate(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}`;
}

/** The DA value `days` before `da` (calendar days). */
export function daysBefore(da: string, days: number): string {
  const date = new Date(Number(da.slice(0, 4)), Number(da.slice(4, 6)) - 1, Number(da.slice(6, 8)));
  date.setDate(date.getDate() - days);
  return dicomDate(date);
}
