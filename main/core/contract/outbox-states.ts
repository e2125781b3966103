/** Where one instance stands on its way to one destination: the state of its outbox row. */
export const OUTBOX_STATES = ['pending', 'sending', 'delivered', 'failed', 'conflict', 'cancelled'] as const;

export type OutboxState = (typeof OUTBOX_STATES)[number];
