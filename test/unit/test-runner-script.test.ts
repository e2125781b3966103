// scripts/run-tests.mjs is what `npm test` and CI run: one process per test file, one summary for the run. A test
// process that never exits after its tests, or that dies before its summary, must cost the run seconds and be
// said, never hold it until CI's limit nor pass unseen.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';

const FIXTURES = 'test/fixtures/run-tests';

/**
 * Runs the script to its exit, with its output up to its last summary line. Not to the close of its output: a
 * fixture leaves a process that holds it open.
 */
async function runTests(...paths: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['scripts/run-tests.mjs', ...paths], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let summaryEnd!: () => void;
  const summaryOut = new Promise<void>((resolve) => (summaryEnd = resolve));
  const take = (text: string) => {
    output += text;
    if (/^ℹ duration_ms /m.test(output)) summaryEnd();
  };
  child.stdout.setEncoding('utf8').on('data', take);
  child.stderr.setEncoding('utf8').on('data', take);
  const [code] = (await once(child, 'exit')) as [number | null];
  await summaryOut;
  child.stdout.destroy();
  child.stderr.destroy();
  return { code, output };
}

function summaryOf(output: string): Record<string, number> {
  const lines = [...output.matchAll(/^ℹ (\w+) ([\d.]+)$/gm)];
  return Object.fromEntries(lines.map(([, key, value]) => [key, Number(value)]));
}

test('a file that behaves: its counts, one summary, exit code 0', async () => {
  const { code, output } = await runTests(`${FIXTURES}/passes.test.ts`);
  assert.equal(code, 0, output);
  const summary = summaryOf(output);
  assert.deepEqual(
    { ...summary, duration_ms: undefined },
    { tests: 3, suites: 0, pass: 2, fail: 0, cancelled: 0, skipped: 1, todo: 0, duration_ms: undefined },
  );
  assert.equal(output.match(/^ℹ tests /gm)?.length, 1, 'one summary for the run');
  assert.match(output, /✔ two passes/);
});

test('a process that never exits after its tests, or whose output another holds, is killed and counted by its summary; one that dies is a failure', async () => {
  const { code, output } = await runTests(FIXTURES);
  const holder = /holder pid (\d+)/.exec(output);
  if (holder) process.kill(Number(holder[1]));
  assert.equal(code, 1, output);
  assert.match(output, /⚠ test\/fixtures\/run-tests\/exits-late\.test\.ts: its tests finished, but its process did not exit within 30 s; killed/);
  assert.match(output, /⚠ test\/fixtures\/run-tests\/holds-output\.test\.ts: its tests finished, but a process its tests started still held its output within 30 s; killed/);
  assert.match(output, /✖ test\/fixtures\/run-tests\/dies\.test\.ts: ended \(SIGKILL\) before its summary/);
  assert.match(output, /✖ files that gave no summary: test\/fixtures\/run-tests\/dies\.test\.ts$/m);
  const summary = summaryOf(output);
  // dies: one failure for the file; exits-late and holds-output: one passing test each; passes: two passed, one
  // skipped.
  assert.deepEqual(
    { ...summary, duration_ms: undefined },
    { tests: 6, suites: 0, pass: 4, fail: 1, cancelled: 0, skipped: 1, todo: 0, duration_ms: undefined },
  );
  assert.equal(output.match(/^ℹ tests /gm)?.length, 1, 'one summary for the run');
});
