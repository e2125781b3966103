import { randomBytes } from 'node:crypto';

/** A fresh UID under the 2.25 root (UUID-derived), at most 44 characters, digits and dots only. */
export function newUid(): string {
  return `2.25.${BigInt(`0x${randomBytes(16).toString('hex')}`).toString(10)}`;
}
