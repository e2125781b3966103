// Coverage-guided fuzzing of the parsers that take bytes from outside (test/fuzz/targets.ts), seeded by the
// checked-in corpus (test/fuzz/corpus/<target>/). Every input once found to crash, hang or blow up memory
// is kept in test/fuzz/crashers/<target>/ and replayed first, as a regression test.
// FUZZ_SECONDS sets the time per target (default 20: under 2 minutes for all); FUZZ_SEED the mutation seed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fuzz } from './engine.js';
import { TARGETS } from './targets.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 20);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) || 1;

function inputsIn(dir: string): Array<{ name: string; bytes: Buffer }> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).sort().map((name) => ({ name, bytes: readFileSync(join(dir, name)) }));
}

describe('fuzzing the parsers of outside bytes', () => {
  for (const target of TARGETS) {
    const crashers = inputsIn(join(HERE, 'crashers', target.name));
    test(`${target.name}: the inputs that once crashed it are refused precisely`, { skip: crashers.length === 0 && 'no crasher kept' }, async () => {
      for (const { name, bytes } of crashers) {
        try {
          await target.run(bytes);
        } catch (error) {
          assert.ok(target.isRefusal(error), `${name}: ${(error as Error)?.stack ?? String(error)}`);
        }
      }
    });

    test(`${target.name}: ${SECONDS} s of coverage-guided fuzzing find no crash, hang or memory blow-up`, { timeout: SECONDS * 1000 + 60_000 }, async () => {
      const seeds = inputsIn(join(HERE, 'corpus', target.name)).map((s) => s.bytes);
      assert.ok(seeds.length > 0, `a corpus for ${target.name}`);
      const report = await fuzz(target, seeds, { seconds: SECONDS, seed: SEED });
      for (const finding of report.findings) {
        const dir = join(HERE, 'crashers', target.name);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, `${finding.kind}-${createHash('sha256').update(finding.input).digest('hex').slice(0, 16)}`), finding.input);
      }
      process.stdout.write(`# fuzz ${target.name}: ${report.executions} inputs, ${report.corpusSize} in the corpus, ${report.blocksCovered} blocks covered (seed ${SEED})\n`);
      assert.deepEqual(report.findings.map((f) => `${f.kind}: ${f.message}`), [], `kept in test/fuzz/crashers/${target.name}/`);
    });
  }
});
