import { EventEmitter } from 'node:events';
import type { OutboxState } from '../contract/outbox-states.js';

export type { OutboxState };

export interface ArchiveEventMap {
  'instance-stored': {
    sopInstanceUid: string;
    seriesUid: string;
    studyUid: string;
    callingAe: string;
    outcome: 'stored' | 'replaced';
    sizeBytes: number;
  };
  'instance-deleted': { sopInstanceUid: string; seriesUid: string; studyUid: string };
  /** The local copy was dropped to free space; the archive holds the instance and its rows stay (cloud-only). */
  'instance-evicted': { sopInstanceUid: string; seriesUid: string; studyUid: string };
  'study-updated': { studyUid: string; numInstances: number; numSeries: number };
  'outbox-changed': {
    studyUid: string;
    destination: string;
    sopInstanceUids: string[];
    state: OutboxState;
    reason?: string;
  };
  /** A forward destination changed state (online/offline/paused/auth/forbidden/idle); emitted by forward/. */
  'destination-status': {
    destination: string;
    state: 'online' | 'offline' | 'paused' | 'auth' | 'forbidden' | 'idle';
    since: number;
    lastError: string | null;
  };
}

export type ArchiveEventName = keyof ArchiveEventMap;

/** The in-process event stream that web/ (SSE) and forward/ subscribe to. */
export class ArchiveEvents {
  private readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  emit<K extends ArchiveEventName>(name: K, payload: ArchiveEventMap[K]): void {
    this.emitter.emit(name, payload);
    this.emitter.emit('*', name, payload);
  }

  on<K extends ArchiveEventName>(name: K, listener: (payload: ArchiveEventMap[K]) => void): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }

  /** Every event, with its name: for the SSE stream. */
  onAny(listener: <K extends ArchiveEventName>(name: K, payload: ArchiveEventMap[K]) => void): () => void {
    this.emitter.on('*', listener);
    return () => this.emitter.off('*', listener);
  }
}
