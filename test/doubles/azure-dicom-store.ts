// In-memory archive of the Azure DICOM double: instance bytes keyed by partition and SOP Instance UID, and
// the change feed of everything stored, replaced and deleted.
import type { InstanceInfo } from './dicom-instance-info.js';

export const DEFAULT_PARTITION = 'Microsoft.Default';

export type Identified = InstanceInfo & { studyUid: string; seriesUid: string; sopUid: string; sopClassUid: string };

/** What the double holds: the instance's identifying attributes, and its bytes as received. */
export interface StoredInstance extends Omit<Identified, 'hasPatientId'> {
  partition: string;
  /** The bytes as received. */
  bytes: Buffer;
  storedAt: Date;
  /** 1 when created; +1 for each upsert (PUT) that replaced it. */
  writes: number;
  /** Service-wide version of these bytes, as dicom-server's watermark: a change-feed entry is current while it matches. */
  watermark: number;
}

export type ChangeAction = 'create' | 'update' | 'delete';

/** One change-feed record as the service keeps it; State and Metadata are worked out when read. */
export interface ChangeRecord {
  sequence: number;
  partition: string;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  action: ChangeAction;
  timestamp: Date;
  /** The version the action wrote (create, update) or removed (delete). */
  watermark: number;
}

export class InstanceStore {
  private readonly byKey = new Map<string, StoredInstance>();
  /** The change feed: one record per create, update and delete, Sequence increasing across partitions. */
  readonly changes: ChangeRecord[] = [];
  private lastWatermark = 0;

  get(partition: string, sopUid: string): StoredInstance | undefined {
    return this.byKey.get(key(partition, sopUid));
  }

  /** Creates or replaces the instance (a create or an update in the change feed); returns what is now stored. */
  put(partition: string, info: Identified, bytes: Buffer): StoredInstance {
    const previous = this.get(partition, info.sopUid);
    const watermark = ++this.lastWatermark;
    const stored: StoredInstance = {
      partition,
      studyUid: info.studyUid,
      seriesUid: info.seriesUid,
      sopUid: info.sopUid,
      sopClassUid: info.sopClassUid,
      transferSyntaxUid: info.transferSyntaxUid,
      patientId: info.patientId,
      patientName: info.patientName,
      modality: info.modality,
      studyDate: info.studyDate,
      accessionNumber: info.accessionNumber,
      bytes,
      storedAt: new Date(),
      writes: (previous?.writes ?? 0) + 1,
      watermark,
    };
    this.byKey.set(key(partition, info.sopUid), stored);
    this.record(stored, previous ? 'update' : 'create');
    return stored;
  }

  /** Deletes matching instances; returns how many. */
  delete(partition: string, studyUid: string, seriesUid?: string, sopUid?: string): number {
    const victims = this.list(partition).filter(
      (i) => i.studyUid === studyUid && (!seriesUid || i.seriesUid === seriesUid) && (!sopUid || i.sopUid === sopUid),
    );
    for (const v of victims) {
      this.byKey.delete(key(partition, v.sopUid));
      this.record(v, 'delete');
    }
    return victims.length;
  }

  /** Instances of one partition, or of all partitions when none is given, in storage order. */
  list(partition?: string): StoredInstance[] {
    return [...this.byKey.values()].filter((i) => partition === undefined || i.partition === partition);
  }

  clear(): void {
    this.byKey.clear();
    this.changes.length = 0;
  }

  private record(instance: StoredInstance, action: ChangeAction): void {
    this.changes.push({
      sequence: this.changes.length + 1, partition: instance.partition, studyUid: instance.studyUid, seriesUid: instance.seriesUid,
      sopUid: instance.sopUid, action, timestamp: new Date(), watermark: instance.watermark,
    });
  }
}

function key(partition: string, sopUid: string): string {
  return `${partition}\u0000${sopUid}`;
}
