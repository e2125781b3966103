import type { z } from 'zod';

export class SettingsError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`invalid settings in ${file}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'SettingsError';
  }
}

function valueAt(data: unknown, path: PropertyKey[]): unknown {
  let cursor: unknown = data;
  for (const key of path) {
    if (cursor === null || typeof cursor !== 'object') return undefined;
    cursor = (cursor as Record<PropertyKey, unknown>)[key];
  }
  return cursor;
}

/** One line per problem: the field's dotted path, the value found, and what is allowed. */
export function describeIssues(error: z.ZodError, data: unknown): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)';
    const value = valueAt(data, issue.path);
    const shown = value === undefined ? 'missing' : JSON.stringify(value);
    return `field "${path}" has value ${shown}: ${issue.message}`;
  });
}
