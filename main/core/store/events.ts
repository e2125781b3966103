import { EventEmitter } from 'node:events';
import type { ArchiveEventMap } from '../contract/events.js';

export type { OutboxState } from '../contract/outbox-states.js';
export type { ArchiveEventMap };

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
