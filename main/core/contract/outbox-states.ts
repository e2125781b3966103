/**
 * The states of an outbox row, one list for everyone: store/ (which owns the outbox, and checks the column
 * against this list), forward/ (which moves rows between them), web/ (which counts them) and the page.
 */
export const OUTBOX_STATES = ['pending', 'sending', 'delivered', 'failed', 'conflict', 'cancelled'] as const;

export type OutboxState = (typeof OUTBOX_STATES)[number];
