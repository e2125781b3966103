// Reading what DCMTK's query/retrieve tools print, for assertions on what a workstation saw.

export type FindAttributes = Record<string, string>;

export interface FindResult {
  responses: FindAttributes[];
  final: string;
}

/** Parses `findscu -v` output: one attribute map (by keyword) per pending response, and the final status. */
export function parseFindOutput(text: string): FindResult {
  const blocks = text.split(/Find Response: \d+ \(Pending\)/).slice(1);
  const responses = blocks.map((block) => {
    const attributes: FindAttributes = {};
    for (const line of block.split('\n')) {
      const m = /\(([0-9a-f]{4}),([0-9a-f]{4})\) \w\w (?:\[(.*)\]|\(no value available\))\s+#\s*\d+,\s*\d+ (\w+)/.exec(line);
      if (m) attributes[m[4]!] = (m[3] ?? '').replace(/\0+$/, '').trim(); // UI values are NUL-padded
      if (/Received Final Find Response/.test(line)) break;
    }
    return attributes;
  });
  const final = /Received Final Find Response \(([^)]*)\)/.exec(text)?.[1] ?? 'none';
  return { responses, final };
}
