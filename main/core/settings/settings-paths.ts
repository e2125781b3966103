/** Reading, writing and comparing settings by dotted path (`dimse.port`); arrays count as one value. */

export function valueAt(object: unknown, path: string): unknown {
  let cursor = object;
  for (const key of path.split('.')) cursor = cursor !== null && typeof cursor === 'object' ? (cursor as Record<string, unknown>)[key] : undefined;
  return cursor;
}

/** Sets `path` in a plain object tree, creating objects on the way; undefined removes the key. */
export function setValueAt(object: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cursor = object;
  for (const key of keys.slice(0, -1)) {
    const next = cursor[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) cursor[key] = {};
    cursor = cursor[key] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete cursor[last];
  else cursor[last] = structuredClone(value);
}

export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The leaf paths (objects recursed, arrays whole) whose values differ between `a` and `b`, sorted. */
export function changedPaths(a: unknown, b: unknown, prefix = ''): string[] {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((key) => changedPaths(a[key], b[key], prefix ? `${prefix}.${key}` : key));
  }
  return sameValue(a, b) ? [] : [prefix];
}
