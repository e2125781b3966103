// A small coverage-guided fuzzer on V8's own block coverage (node:inspector, Profiler.takePreciseCoverage):
// an input that reaches a block not reached before, of our code (main/core/) or of a parser library a
// target names, joins the corpus and is mutated further. Jazzer.js, the usual choice, does not run here:
// @jazzer.js/core 4.0.0's prebuilt needs GLIBC 2.38 (Debian 12 has 2.36) and 2.1.0 does not install; V8's
// coverage needs no native code and no instrumentation of the TypeScript that tsx loads.
import { Session } from 'node:inspector/promises';

export interface FuzzTarget {
  name: string;
  /** Runs one input. Throws only for a bug; bad input must end in a rejection that `isRefusal` accepts. */
  run(input: Buffer): unknown;
  /** A precise refusal of bad input (the error the code means to throw), not a crash. */
  isRefusal(error: unknown): boolean;
  /** Byte strings worth splicing into inputs (keywords, magic numbers). */
  dictionary?: Buffer[];
  /** Whose code's coverage guides the search, as parts of script URLs; default our own (main/core/). */
  coverageOf?: string[];
}

export interface FuzzFinding {
  kind: 'crash' | 'slow' | 'memory';
  input: Buffer;
  message: string;
}

export interface FuzzReport {
  executions: number;
  corpusSize: number;
  blocksCovered: number;
  findings: FuzzFinding[];
}

const SLOW_MS = 1000;
const MAX_INPUT = 64 * 1024;

/** Runs `target` for `seconds` from `seeds`; stops early at the first finding. */
export async function fuzz(target: FuzzTarget, seeds: Buffer[], options: { seconds: number; seed?: number; maxHeapGrowthBytes?: number }): Promise<FuzzReport> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  let state = options.seed ?? 1;
  const random = (n: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return ((state >>> 0) % Math.max(1, n));
  };
  const coverageOf = target.coverageOf ?? ['/main/core/'];
  const seen = new Set<string>();
  const corpus: Buffer[] = [];
  const findings: FuzzFinding[] = [];
  let executions = 0;

  /** Blocks of our code the last input reached (counts are reset by each take). */
  const newBlocks = async (): Promise<number> => {
    const { result } = await session.post('Profiler.takePreciseCoverage');
    let fresh = 0;
    for (const script of result) {
      if (!coverageOf.some((part) => script.url.includes(part))) continue;
      for (const fn of script.functions) {
        for (const range of fn.ranges) {
          if (range.count === 0) continue;
          const key = `${script.url}:${range.startOffset}:${range.endOffset}`;
          if (!seen.has(key)) {
            seen.add(key);
            fresh++;
          }
        }
      }
    }
    return fresh;
  };

  const execute = async (input: Buffer): Promise<boolean> => {
    executions++;
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();
    try {
      await target.run(input);
    } catch (error) {
      if (!target.isRefusal(error)) {
        findings.push({ kind: 'crash', input, message: error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : String(error) });
        return false;
      }
    }
    const elapsed = performance.now() - started;
    if (elapsed > SLOW_MS) {
      findings.push({ kind: 'slow', input, message: `one input took ${Math.round(elapsed)} ms` });
      return false;
    }
    const growth = process.memoryUsage().heapUsed - heapBefore;
    if (growth > (options.maxHeapGrowthBytes ?? 256 * 1024 * 1024)) {
      findings.push({ kind: 'memory', input, message: `one input grew the heap by ${growth} bytes` });
      return false;
    }
    if ((await newBlocks()) > 0) corpus.push(input);
    return true;
  };

  try {
    await newBlocks(); // what loading the modules reached is not the inputs' doing
    for (const seed of seeds) if (!(await execute(seed))) break;
    if (corpus.length === 0) corpus.push(Buffer.alloc(0));
    const deadline = Date.now() + options.seconds * 1000;
    while (findings.length === 0 && Date.now() < deadline) {
      const parent = corpus[random(corpus.length)]!;
      let child = parent;
      for (let i = 1 + random(4); i > 0; i--) child = mutate(child, corpus, target.dictionary ?? [], random);
      await execute(child.length > MAX_INPUT ? child.subarray(0, MAX_INPUT) : child);
    }
  } finally {
    await session.post('Profiler.stopPreciseCoverage');
    session.disconnect();
  }
  return { executions, corpusSize: corpus.length, blocksCovered: seen.size, findings };
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x2a, 0x3f, 0x5c, 0x2d, 0x0d, 0x0a];

function mutate(input: Buffer, corpus: Buffer[], dictionary: Buffer[], random: (n: number) => number): Buffer {
  const bytes = Buffer.from(input);
  const at = random(bytes.length + 1);
  switch (random(9)) {
    case 0: // flip a bit
      if (bytes.length > 0) bytes[at % bytes.length]! ^= 1 << random(8);
      return bytes;
    case 1: // an interesting byte
      if (bytes.length > 0) bytes[at % bytes.length] = INTERESTING[random(INTERESTING.length)]!;
      return bytes;
    case 2: // a random byte
      if (bytes.length > 0) bytes[at % bytes.length] = random(256);
      return bytes;
    case 3: // delete a run
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + random(16))]);
    case 4: // duplicate a run
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at, at + 1 + random(64)), bytes.subarray(at)]);
    case 5: { // splice from another input
      const other = corpus[random(corpus.length)]!;
      const from = random(other.length + 1);
      return Buffer.concat([bytes.subarray(0, at), other.subarray(from, from + 1 + random(256))]);
    }
    case 6: // a dictionary word
      if (dictionary.length === 0) return bytes;
      return Buffer.concat([bytes.subarray(0, at), dictionary[random(dictionary.length)]!, bytes.subarray(at)]);
    case 7: { // an interesting 32-bit number, either endianness (lengths)
      if (bytes.length < 4) return bytes;
      const where = at % (bytes.length - 3);
      const value = [0, 1, 0xffffffff, 0x7fffffff, 0x10000, random(65536), bytes.length][random(7)]!;
      if (random(2)) bytes.writeUInt32BE(value >>> 0, where);
      else bytes.writeUInt32LE(value >>> 0, where);
      return bytes;
    }
    default: // truncate
      return bytes.subarray(0, at);
  }
}
