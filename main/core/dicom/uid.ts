/** DICOM UI value rules (PS3.5 9.1): digits and dots, components without leading zeros, at most 64 chars. */
const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

const MAX_UID_LENGTH = 64;

export function uidProblem(value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return 'is empty';
  if (value.length > MAX_UID_LENGTH) return `is ${value.length} characters long (at most ${MAX_UID_LENGTH})`;
  if (!/^[0-9.]+$/.test(value)) return 'contains characters other than digits and dots';
  if (!UID_PATTERN.test(value)) return 'is not a dotted sequence of numbers without leading zeros';
  return undefined;
}

export class InvalidUidError extends Error {
  constructor(readonly attribute: string, readonly value: unknown, problem: string) {
    super(`${attribute} ${JSON.stringify(value)} ${problem}`);
    this.name = 'InvalidUidError';
  }
}

export function assertUid(attribute: string, value: unknown): string {
  const problem = uidProblem(value);
  if (problem) throw new InvalidUidError(attribute, value, problem);
  return value as string;
}
