import type { LiveEvent } from '../../main/core/contract/events';
import type { StudyStore } from './study-store';

/** One screen of the window; the router in main.ts shows one at a time. */
export interface View {
  element: HTMLElement;
  /** Live event for this view. */
  onEvent?(event: LiveEvent): void;
  dispose?(): void;
}

/** What the router hands each view. */
export interface AppContext {
  store: StudyStore;
  navigate(hash: string): void;
  /** Destination status cache for the list's "no destination" state. */
  refreshSummary(): Promise<void>;
}
