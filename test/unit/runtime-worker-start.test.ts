// A module with a worker pool (web/image-pool.ts, store/ingest-thread.ts) finds its worker beside itself, with its
// own extension, from source, from the build and inside the desktop bundle, and gives the thread tsx's loader
// only when it runs from source in a process that was not started with `--import tsx`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { workerStart } from '../../main/core/runtime/worker-start.js';

const WORKER_START = new URL('../../main/core/runtime/worker-start.ts', import.meta.url).href;

describe('a worker thread started beside its module', () => {
  test('the worker sits beside the module with its extension: source, build, desktop bundle', () => {
    const cases = [
      ['file:///app/main/core/web/image-pool.ts', 'image-worker', '/app/main/core/web/image-worker.ts'],
      ['file:///app/dist/main/core/web/image-pool.js', 'image-worker', '/app/dist/main/core/web/image-worker.js'],
      ['file:///app/dist/main/core/store/ingest-thread.mjs', 'ingest-worker', '/app/dist/main/core/store/ingest-worker.mjs'],
      ['file:///app/dist/electron/main.cjs', 'image-worker', '/app/dist/electron/image-worker.cjs'],
      ['file:///app/dist/electron/main.cjs', 'ingest-worker', '/app/dist/electron/ingest-worker.cjs'],
    ] as const;
    for (const [moduleUrl, name, filename] of cases) {
      assert.equal(workerStart(moduleUrl, name).filename, fileURLToPath(pathToFileURL(filename)), moduleUrl);
    }
  });

  test('compiled, or in a process started with tsx, the thread takes the process flags as they are', () => {
    assert.equal(workerStart('file:///app/dist/main/core/web/image-pool.js', 'image-worker').execArgv, undefined);
    assert.equal(workerStart('file:///app/dist/electron/main.cjs', 'image-worker').execArgv, undefined);
    // The test runner starts this process with `--import tsx`.
    assert.ok(process.execArgv.some((arg) => arg.includes('tsx')), process.execArgv.join(' '));
    assert.equal(workerStart(WORKER_START, 'image-worker').execArgv, undefined);
  });

  test("from source, with tsx registered from code (bin/dicom-edge.js), the thread gets tsx's loader on top of the process flags", () => {
    const script = "import { register } from 'tsx/esm/api'; register();\n" +
      `const { workerStart } = await import(${JSON.stringify(WORKER_START)});\n` +
      `console.log(JSON.stringify(workerStart(${JSON.stringify(WORKER_START)}, 'image-worker').execArgv));\n`;
    // The script comes on stdin: with `-e` it would be one of the process flags, and name tsx.
    const child = spawnSync(process.execPath, ['--no-warnings', '--input-type=module'], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)), encoding: 'utf8', input: script,
    });
    assert.equal(child.status, 0, child.stderr);
    const execArgv = JSON.parse(child.stdout) as string[];
    assert.deepEqual(execArgv.slice(0, -2), ['--no-warnings', '--input-type=module']);
    assert.equal(execArgv.at(-2), '--import');
    assert.match(execArgv.at(-1)!, /^file:\/\/.*\/node_modules\/tsx\/.*$/);
  });

  test('a module URL with no module extension is refused by name', () => {
    assert.throws(() => workerStart('file:///app/main/core/web/image-pool', 'image-worker'), /image-pool is not a module file/);
  });
});
