/**
 * How a module that runs a worker pool (web/image-pool.ts, store/ingest-thread.ts) starts its threads. Such a
 * module runs as .ts under tsx (tests, `npm run serve`, bin/dicom-edge.js without a build), as .js from the build
 * (dist/main/core/), and inside the desktop bundle dist/electron/main.cjs; its worker sits beside it in each case,
 * with the same extension (scripts/build.mjs bundles each worker as a .cjs beside main.cjs).
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface WorkerStart {
  /** The worker's file. */
  filename: string;
  /** The thread's Node flags; undefined: the process's own. */
  execArgv: string[] | undefined;
}

/**
 * The worker `name` beside the module at `moduleUrl` (the caller's `import.meta.url`: in the bundle that is
 * main.cjs, wherever this module was bundled from).
 */
export function workerStart(moduleUrl: string, name: string): WorkerStart {
  const extension = /\.[cm]?[jt]s$/.exec(moduleUrl)?.[0];
  if (extension === undefined) throw new Error(`${moduleUrl} is not a module file: no worker can sit beside it`);
  return { filename: fileURLToPath(new URL(`./${name}${extension}`, moduleUrl)), execArgv: workerExecArgv(moduleUrl) };
}

/**
 * A worker thread starts with the process's Node flags. From source it needs tsx's loader: present when the
 * process was started with `--import tsx`, added here when tsx was registered another way (bin/dicom-edge.js).
 */
function workerExecArgv(moduleUrl: string): string[] | undefined {
  if (!moduleUrl.endsWith('.ts') || process.execArgv.some((arg) => arg.includes('tsx'))) return undefined;
  return [...process.execArgv, '--import', pathToFileURL(createRequire(moduleUrl).resolve('tsx')).href];
}
