/**
 * The study list's data: every local study (QIDO, paged) with its sync state, kept current from the
 * live events. Views subscribe and re-filter; nothing here touches the DOM.
 */
import type { StudySync } from '../../main/core/contract/api/sync';
import type { StudyLocation } from '../../main/core/contract/cloud';
import { TAG, type DicomJson } from '../../main/core/contract/dicom-json';
import { OUTBOX_STATES, type OutboxState } from '../../main/core/contract/outbox-states';
import { getStudiesSync, queryStudies } from './api';

/** The archive destination as /api/info reports it: 'offline' when forwarding found it unreachable. */
export type ArchiveState = 'none' | 'online' | 'offline' | 'unknown';

/** The location cell's text and pill class: the archive's state matters only for what is not (all) here. */
export function locationLabel(location: StudyLocation | null | undefined, archive: ArchiveState): { text: string; label: string } {
  if (location === undefined || location === null) return { text: '', label: 'none' };
  if (location === 'local') return { text: 'local', label: 'local' };
  if (archive === 'offline') return location === 'cloud'
    ? { text: 'in the cloud — archive offline', label: 'cloud-offline' }
    : { text: 'local + cloud — archive offline', label: 'both-offline' };
  return location === 'cloud' ? { text: 'cloud', label: 'cloud' } : { text: 'local + cloud', label: 'both' };
}
import { num, personName, str, strings } from './format';

export interface StudyRow {
  uid: string;
  patientName: string;
  patientNameRaw: string;
  patientId: string;
  birthDate: string;
  sex: string;
  studyDate: string;
  studyTime: string;
  modalities: string[];
  description: string;
  accession: string;
  numSeries: number;
  numInstances: number;
  sizeBytes?: number;
  sync?: StudyProgress;
  /** Where the study is, as the index says (GET /api/sync); undefined until read, null when the index does not know it. */
  location?: StudyLocation | null;
  /** Instances held here, of numInstances known. */
  numLocalInstances?: number;
  pinned?: boolean;
  /** Lower-cased name, ID and accession for the search box. */
  haystack: string;
}

/** A study's uploads summed over its destinations; `total` leaves out cancelled rows. */
export interface StudyProgress {
  counts: Record<OutboxState, number>;
  total: number;
}

/** Rows queued while no destination existed ('*') wait for one and are no upload yet. */
export function progressOf(sync: StudySync): StudyProgress {
  const counts = Object.fromEntries(OUTBOX_STATES.map((state) => [state, 0])) as Record<OutboxState, number>;
  for (const destination of sync.destinations) {
    if (destination.name === '*') continue;
    for (const state of OUTBOX_STATES) counts[state] += destination.counts[state];
  }
  const total = OUTBOX_STATES.reduce((n, state) => n + counts[state], 0) - counts.cancelled;
  return { counts, total };
}

export type SyncLabel = 'none' | 'waiting' | 'pending' | 'uploading' | 'done' | 'failed' | 'conflict';

export function syncLabel(sync: StudyProgress | undefined, configured: boolean): { label: SyncLabel; text: string; progress: number } {
  if (!sync || sync.total === 0) return configured ? { label: 'none', text: '–', progress: 0 } : { label: 'waiting', text: 'no destination', progress: 0 };
  const c = sync.counts;
  const progress = sync.total > 0 ? c.delivered / sync.total : 0;
  if (c.failed > 0) return { label: 'failed', text: `failed ${c.failed}`, progress };
  if (c.conflict > 0) return { label: 'conflict', text: `conflict ${c.conflict}`, progress };
  if (c.delivered >= sync.total) return { label: 'done', text: 'done', progress: 1 };
  if (c.sending > 0 || c.delivered > 0) return { label: 'uploading', text: `uploading ${c.delivered}/${sync.total}`, progress };
  return { label: 'pending', text: 'pending', progress };
}

export function toRow(ds: DicomJson): StudyRow {
  const raw = str(ds, TAG.PatientName);
  const row: StudyRow = {
    uid: str(ds, TAG.StudyInstanceUID),
    patientNameRaw: raw,
    patientName: personName(raw),
    patientId: str(ds, TAG.PatientID),
    birthDate: str(ds, TAG.PatientBirthDate),
    sex: str(ds, TAG.PatientSex),
    studyDate: str(ds, TAG.StudyDate),
    studyTime: str(ds, TAG.StudyTime),
    modalities: strings(ds, TAG.ModalitiesInStudy),
    description: str(ds, TAG.StudyDescription),
    accession: str(ds, TAG.AccessionNumber),
    numSeries: num(ds, TAG.NumberOfStudyRelatedSeries) ?? 0,
    numInstances: num(ds, TAG.NumberOfStudyRelatedInstances) ?? 0,
    haystack: '',
  };
  row.haystack = `${raw} ${row.patientName} ${row.patientId} ${row.accession}`.toLowerCase();
  return row;
}

export interface StudyFilter {
  text: string;
  /** Inclusive DA bounds; '' for open. */
  from: string;
  to: string;
  modality: string;
  sync: '' | SyncLabel;
}

export type SortKey = 'patientName' | 'patientId' | 'birthDate' | 'studyDate' | 'modalities' | 'description' | 'accession' | 'numSeries' | 'numInstances' | 'sizeBytes' | 'location' | 'sync';

export function filterStudies(rows: readonly StudyRow[], filter: StudyFilter, configured: boolean): StudyRow[] {
  const words = filter.text.toLowerCase().split(/[\s^,]+/).filter(Boolean);
  return rows.filter((row) => {
    if (words.length && !words.every((w) => row.haystack.includes(w))) return false;
    if (filter.from && (!row.studyDate || row.studyDate < filter.from)) return false;
    if (filter.to && (!row.studyDate || row.studyDate > filter.to)) return false;
    if (filter.modality && !row.modalities.includes(filter.modality)) return false;
    if (filter.sync && syncLabel(row.sync, configured).label !== filter.sync) return false;
    return true;
  });
}

const SYNC_ORDER: Record<SyncLabel, number> = { failed: 0, conflict: 1, uploading: 2, pending: 3, waiting: 4, none: 5, done: 6 };

const collator = new Intl.Collator();

/**
 * Sorts in place. Each row's key is computed once (not twice per comparison) and strings compare with one
 * shared Intl.Collator: re-sorting 10,000 rows when a study arrives must not cost a visible frame.
 */
export function sortStudies(rows: StudyRow[], key: SortKey, descending: boolean, configured: boolean): StudyRow[] {
  const pick = (row: StudyRow): string | number => {
    switch (key) {
      case 'studyDate': return `${row.studyDate}${row.studyTime}`;
      case 'modalities': return row.modalities.join(',');
      case 'sync': return SYNC_ORDER[syncLabel(row.sync, configured).label];
      case 'sizeBytes': return row.sizeBytes ?? -1;
      case 'location': return row.location ?? '';
      default: return row[key];
    }
  };
  const sign = descending ? -1 : 1;
  const keyed = rows.map((row) => ({ row, key: pick(row) }));
  keyed.sort((a, b) => {
    const x = a.key;
    const y = b.key;
    const order = typeof x === 'number' && typeof y === 'number' ? x - y
      : key === 'studyDate' ? (x < y ? -1 : x > y ? 1 : 0) : collator.compare(String(x), String(y));
    return order * sign || (a.row.uid < b.row.uid ? -1 : 1);
  });
  for (let i = 0; i < keyed.length; i++) rows[i] = keyed[i]!.row;
  return rows;
}

export class StudyStore {
  readonly rows = new Map<string, StudyRow>();
  configured = false;
  /** Whether the list's QIDO searches ask the archive too (includecloud); off: the index alone answers. */
  includeCloud = typeof localStorage !== 'undefined' && localStorage.getItem('dicom-edge-include-cloud') === 'true';
  archive: ArchiveState = 'none';
  loaded = false;
  error = '';
  private readonly listeners = new Set<() => void>();
  private syncTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly dirtySync = new Set<string>();
  private readonly dirtyStudies = new Set<string>();
  private studyTimer: ReturnType<typeof setTimeout> | undefined;

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  notify(): void {
    this.changed();
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }

  async load(): Promise<void> {
    const seen = new Set<string>();
    try {
      const page = 5000;
      for (let offset = 0; offset < 200_000; offset += page) {
        const batch = await queryStudies(this.cloudKey(), page, offset);
        for (const ds of batch) {
          const row = toRow(ds);
          seen.add(row.uid);
          if (row.uid) this.rows.set(row.uid, { ...this.rows.get(row.uid), ...row });
        }
        if (batch.length < page) break;
      }
      // A reload with the archive left out drops the archive's studies the index does not hold.
      for (const uid of this.rows.keys()) if (!seen.has(uid)) this.rows.delete(uid);
      this.loaded = true;
      this.error = '';
    } catch (error) {
      this.error = (error as Error).message;
    }
    this.changed();
    // Sync states follow in batches; the list is usable before they arrive.
    if (this.loaded) {
      await this.loadSync();
      this.changed();
    }
  }

  /** Re-reads the sync state of the given studies; true when any of them changed. */
  async loadSync(uids: string[] = [...this.rows.keys()]): Promise<boolean> {
    let changed = false;
    try {
      for (const sync of await getStudiesSync(uids)) {
        const row = this.rows.get(sync.studyUid);
        if (!row) continue;
        const progress = progressOf(sync);
        if (JSON.stringify(row.sync) !== JSON.stringify(progress) || row.sizeBytes !== sync.sizeBytes || row.location !== sync.location
          || row.numLocalInstances !== sync.numLocalInstances || row.pinned !== sync.pinned) changed = true;
        row.sync = progress;
        row.sizeBytes = sync.sizeBytes;
        row.location = sync.location;
        row.numLocalInstances = sync.numLocalInstances;
        row.pinned = sync.pinned;
      }
    } catch {
      /* sync state is optional (no forward service yet): the list still works */
    }
    return changed;
  }

  /** A study was added or changed: re-read it (batched). */
  studyChanged(uid: string): void {
    this.dirtyStudies.add(uid);
    this.studyTimer ??= setTimeout(() => void this.flushStudies(), 250);
  }

  private async flushStudies(): Promise<void> {
    this.studyTimer = undefined;
    const uids = [...this.dirtyStudies];
    this.dirtyStudies.clear();
    try {
      const found = await queryStudies({ StudyInstanceUID: uids.join('\\'), ...this.cloudKey() }, uids.length + 1);
      const seen = new Set<string>();
      for (const ds of found) {
        const row = toRow(ds);
        seen.add(row.uid);
        const old = this.rows.get(row.uid);
        this.rows.set(row.uid, { ...old, ...row });
      }
      for (const uid of uids) if (!seen.has(uid)) this.rows.delete(uid);
      await this.loadSync(uids);
    } catch {
      for (const uid of uids) this.dirtyStudies.add(uid);
    }
    this.changed();
  }

  syncChanged(uid: string): void {
    this.dirtySync.add(uid);
    this.syncTimer ??= setTimeout(async () => {
      this.syncTimer = undefined;
      const uids = [...this.dirtySync];
      this.dirtySync.clear();
      await this.loadSync(uids);
      this.changed();
    }, 400);
  }

  /** The QIDO parameter that includes or leaves out the archive. */
  private cloudKey(): Record<string, string> {
    return { includecloud: this.includeCloud ? 'true' : 'false' };
  }

  removed(uid: string): void {
    this.studyChanged(uid);
  }
}
