// In-memory archive of the Azure DICOM double: instance bytes keyed by partition and SOP Instance UID.
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
}

export class InstanceStore {
  private readonly byKey = new Map<string, StoredInstance>();

  get(partition: string, sopUid: string): StoredInstance | undefined {
    return this.byKey.get(key(partition, sopUid));
  }

  /** Creates or replaces the instance; returns what is now stored. */
  put(partition: string, info: Identified, bytes: Buffer): StoredInstance {
    const previous = this.get(partition, info.sopUid);
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
    };
    this.byKey.set(key(partition, info.sopUid), stored);
    return stored;
  }

  /** Deletes matching instances; returns how many. */
  delete(partition: string, studyUid: string, seriesUid?: string, sopUid?: string): number {
    const victims = this.list(partition).filter(
      (i) => i.studyUid === studyUid && (!seriesUid || i.seriesUid === seriesUid) && (!sopUid || i.sopUid === sopUid),
    );
    for (const v of victims) this.byKey.delete(key(partition, v.sopUid));
    return victims.length;
  }

  /** Instances of one partition, or of all partitions when none is given, in storage order. */
  list(partition?: string): StoredInstance[] {
    return [...this.byKey.values()].filter((i) => partition === undefined || i.partition === partition);
  }

  clear(): void {
    this.byKey.clear();
  }
}

function key(partition: string, sopUid: string): string {
  return `${partition}\u0000${sopUid}`;
}
