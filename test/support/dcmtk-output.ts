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

export interface RetrieveResponseCounts {
  status: number;
  remaining: number | undefined;
  completed: number | undefined;
  failed: number | undefined;
  warning: number | undefined;
}

export interface RetrieveResult {
  /** The pending responses, in order. */
  pending: RetrieveResponseCounts[];
  final: RetrieveResponseCounts;
  /** FailedSOPInstanceUIDList of the final response. */
  failedUids: string[];
  /** The tool's whole output, for assertion messages. */
  output: string;
}

/** Parses `movescu -d` or `getscu -d` output: the counts of every C-MOVE/C-GET response, and the failed UID list. */
export function parseRetrieveOutput(output: string): RetrieveResult {
  const blocks = output.split(/Received (?:Final )?(?:C-)?(?:Move|Get) Response/i).slice(1);
  const count = (block: string, name: string) => {
    const m = new RegExp(`${name} Suboperations\\s*:\\s*(\\d+)`).exec(block);
    return m ? Number(m[1]) : undefined;
  };
  const responses = blocks.map((block): RetrieveResponseCounts => ({
    status: Number.parseInt(/DIMSE Status\s*:\s*0x([0-9a-f]{4})/i.exec(block)?.[1] ?? 'ffff', 16),
    remaining: count(block, 'Remaining'),
    completed: count(block, 'Completed'),
    failed: count(block, 'Failed'),
    warning: count(block, 'Warning'),
  }));
  const pending = responses.filter((r) => r.status === 0xff00);
  const final = responses.filter((r) => r.status !== 0xff00).at(-1)
    ?? { status: -1, remaining: undefined, completed: undefined, failed: undefined, warning: undefined };
  const list = /\(0008,0058\) UI \[([^\]]*)\]/.exec(blocks.at(-1) ?? '')?.[1] ?? '';
  return { pending, final, failedUids: list.split('\\').map((u) => u.replace(/\0+$/, '').trim()).filter(Boolean), output };
}
