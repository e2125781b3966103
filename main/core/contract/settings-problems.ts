/**
 * A bad settings field, as one line: `field "dimse.port" has value 70000: must be a whole number from 1 to
 * 65535`. The settings file's errors, the start checks and a refused PUT /api/settings (its `problems`)
 * all say it this way; the window reads the field and the message back out to show them at the field.
 */
import type { z } from 'zod';

export interface FieldProblem {
  /** Dotted path ('' for the settings as a whole). */
  path: string;
  message: string;
}

const ROOT = '(root)';

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
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
    const path = issue.path.map(String).join('.') || ROOT;
    const value = valueAt(data, issue.path);
    const shown = value === undefined ? 'missing' : JSON.stringify(value);
    return `field "${path}" has value ${shown}: ${issue.message}`;
  });
}

/** The problems of a failed parse, field by field, as the window shows them. */
export function fieldProblems(error: z.ZodError): FieldProblem[] {
  return error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

const LINE = /^field "([^"]*)" has value (.*)$/s;

/** The field and message of a problem line; a line in another form is a message about no field in particular. */
export function parseProblemLine(line: string): FieldProblem {
  const match = LINE.exec(line);
  if (!match) return { path: '', message: line };
  const path = match[1] === ROOT ? '' : match[1]!;
  const rest = match[2]!;
  // The value is `missing` or JSON, which may hold ": " itself: the first split after which it parses is the one.
  for (let at = rest.indexOf(': '); at >= 0; at = rest.indexOf(': ', at + 1)) {
    const shown = rest.slice(0, at);
    if (shown === 'missing' || parsesAsJson(shown)) return { path, message: rest.slice(at + 2) };
  }
  return { path, message: rest };
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
