#!/usr/bin/env node
// Runs every *.test.ts under test/ (or the folders/files given) with the Node test runner through tsx, one file
// per process, one file at a time, and ends with one summary for the whole run in the runner's own words
// ("ℹ tests N", "ℹ pass N", ...), which CI reads.
//
// Why each file's process is started from here rather than by one `node --test` over every file: a test process
// whose tests have all finished can still fail to exit (in CI, one file's process did, after its last test
// passed, and the run waited on it until CI's limit). Watching each process ourselves bounds that:
// - once a file's summary is out, its process has EXIT_GRACE_MS to exit; then it is killed, the kill is said in
//   the output, and the file counts by its own summary;
// - a file still running after FILE_LIMIT_MS is killed and counts as failed. A single test that hangs fails long
//   before, by --test-timeout.
// Each file's process leads its own process group, so a kill also ends the peers its tests started.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const TEST_TIMEOUT_MS = 600_000;
const EXIT_GRACE_MS = 30_000;
const FILE_LIMIT_MS = 15 * 60_000;
const COUNTS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'];
const SUMMARY_LINE = /^ℹ (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\d+(?:\.\d+)?)$/;

/** The test files under `path`, leaving out folders named fixtures (the runner's own test runs files there). */
function collect(path, out) {
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      if (name !== 'fixtures') collect(join(path, name), out);
    }
  } else if (path.endsWith('.test.ts')) {
    out.push(path);
  }
  return out;
}

// Run from inside a test process (the runner's own test), the environment names that process's runner; a file's
// process reports in its own words only without it.
const { NODE_TEST_CONTEXT: _parentRunner, ...childEnv } = process.env;

/** Kills a file's process and every process its tests started (its process group). */
function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // The group is already gone.
  }
}

/**
 * Kills a file's process group and stops reading its output: a process it started in a session of its own is out
 * of the group's reach, and may hold the output open.
 */
function stop(child) {
  killGroup(child);
  child.stdout.destroy();
}

/**
 * Runs one test file in a process of its own (the runner in-process, --test-isolation=none) and forwards its
 * report, keeping back its summary lines. Resolves with the file's counts, or null when it gave no summary.
 */
function runFile(file, running) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        '--import', 'tsx', '--test', '--test-isolation=none', '--test-reporter=spec',
        `--test-timeout=${TEST_TIMEOUT_MS}`, '--test-force-exit', file,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'], detached: true, env: { ...childEnv, NODE_ENV: 'test' } },
    );
    running.child = child;
    const counts = {};
    let summarised = false;
    let killedAfterSummary = false;
    let exitWait;
    const fileLimit = setTimeout(() => {
      console.log(`✖ ${file}: still running after ${FILE_LIMIT_MS / 60_000} minutes; killed, and counted as failed`);
      summarised = false;
      stop(child);
    }, FILE_LIMIT_MS);

    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
      const summary = SUMMARY_LINE.exec(line);
      if (summary === null) {
        process.stdout.write(`${line}\n`);
        return;
      }
      counts[summary[1]] = Number(summary[2]);
      if (summary[1] !== 'duration_ms') return;
      summarised = COUNTS.every((key) => key in counts);
      exitWait = setTimeout(() => {
        // The child may have exited while a process it started still holds its output open.
        const what = child.exitCode === null && child.signalCode === null
          ? 'its process did not exit'
          : 'a process its tests started still held its output';
        console.log(`⚠ ${file}: its tests finished, but ${what} within ${EXIT_GRACE_MS / 1000} s; killed`);
        killedAfterSummary = true;
        stop(child);
      }, EXIT_GRACE_MS);
    });

    child.on('close', (code, signal) => {
      clearTimeout(fileLimit);
      clearTimeout(exitWait);
      running.child = undefined;
      if (!summarised) {
        console.log(`✖ ${file}: ended (${signal ?? `exit code ${code}`}) before its summary`);
        resolve(null);
      } else if (code !== 0 && !killedAfterSummary && counts.fail === 0) {
        // The runner exits non-zero only for a failure; one it did not count (e.g. after the summary) is one more.
        console.log(`✖ ${file}: exited with ${signal ?? `code ${code}`} though its summary counts no failure`);
        resolve({ ...counts, tests: counts.tests + 1, fail: 1 });
      } else {
        resolve(counts);
      }
    });
  });
}

const roots = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['test'];
const files = roots.flatMap((root) => collect(root, []));
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}

const started = performance.now();
const totals = Object.fromEntries(COUNTS.map((key) => [key, 0]));
const unfinished = [];
const running = { child: undefined };

function summarise() {
  for (const key of COUNTS) console.log(`ℹ ${key} ${totals[key]}`);
  console.log(`ℹ duration_ms ${(performance.now() - started).toFixed(3)}`);
  if (unfinished.length > 0) console.log(`✖ files that gave no summary: ${unfinished.join(', ')}`);
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (running.child !== undefined) killGroup(running.child);
    console.log(`✖ interrupted by ${signal}`);
    summarise();
    process.exit(1);
  });
}

for (const file of files) {
  const fileStarted = performance.now();
  const counts = await runFile(file, running);
  console.log(`# ${file}: ${((performance.now() - fileStarted) / 1000).toFixed(1)} s`);
  if (counts === null) {
    unfinished.push(file);
    // A file that gave no summary is one failure, whatever it reported before it ended.
    totals.tests += 1;
    totals.fail += 1;
    continue;
  }
  for (const key of COUNTS) totals[key] += counts[key];
}
summarise();
process.exit(totals.fail > 0 || totals.cancelled > 0 || unfinished.length > 0 ? 1 : 0);
