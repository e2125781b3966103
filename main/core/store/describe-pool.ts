/**
 * The describe thread: each instance's DICOM JSON (parse up to Pixel Data, JSON, gzip: about a millisecond of
 * CPU per instance) is made in a worker thread (describe-worker.ts), so the event loop that receives instances,
 * streams them to readers and answers senders never runs it. Every way in shares it: DIMSE, STOW-RS, read-through.
 */
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type { DescribedFile, StoredMetadata } from './instance-metadata.js';
import type { DescribeTask, DescribeTaskResult } from './describe-worker.js';

/** What the archive asks of the describe thread; tests give one of their own. */
export interface Describer {
  /** The packed description of an instance (and its text with `withText`); rejects with the reason it cannot be made. */
  describe(file: DescribedFile, options?: { withText?: boolean }): Promise<StoredMetadata & { text?: string }>;
  close(): Promise<void>;
}

/** An idle thread ends after this long (with the parser it loaded); the next instance starts one. */
const IDLE_THREAD_MS = 60_000;

// As web/image-pool.ts: describe-pool.ts under tsx, dist/main/core/store/describe-pool.js from the build, and the
// desktop bundle dist/electron/main.cjs; the worker sits beside it in each case (scripts/build.mjs bundles describe-worker.cjs).
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_FILE = fileURLToPath(new URL(`./describe-worker${/\.[cm]?[jt]s$/.exec(import.meta.url)![0]}`, import.meta.url));

/** From source a worker thread needs tsx's loader: present with `--import tsx`, added when tsx was registered another way. */
function workerExecArgv(): string[] | undefined {
  if (!FROM_SOURCE || process.execArgv.some((arg) => arg.includes('tsx'))) return undefined;
  return [...process.execArgv, '--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href];
}

export class DescribeThread implements Describer {
  private readonly pool: Piscina<DescribeTask, DescribeTaskResult>;

  /** `filename`: the worker file (tests give a failing one). */
  constructor(options: { filename?: string } = {}) {
    this.pool = new Piscina({
      filename: options.filename ?? WORKER_FILE,
      minThreads: 0,
      maxThreads: 1,
      idleTimeout: IDLE_THREAD_MS,
      execArgv: workerExecArgv(),
    });
  }

  async describe(file: DescribedFile, options: { withText?: boolean } = {}): Promise<StoredMetadata & { text?: string }> {
    // The first bytes go over in a buffer of their own, moved rather than copied a second time; a slice of a larger
    // buffer would take all of that buffer with it.
    const head = file.head ? new Uint8Array(file.head) : undefined;
    let result: DescribeTaskResult;
    try {
      result = await this.pool.run(
        { path: file.path, sizeBytes: file.sizeBytes, head, withText: options.withText ?? false },
        head ? { transferList: [head.buffer] } : {},
      );
    } catch (error) {
      throw new Error(`the describe thread failed: ${(error as Error)?.message ?? String(error)}`);
    }
    if ('error' in result) throw new Error(result.error);
    return { encoding: result.encoding, json: Buffer.from(result.json.buffer, result.json.byteOffset, result.json.byteLength), text: result.text };
  }

  /** Ends the thread; descriptions still under way fail (their instances are described later, from their files). */
  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
