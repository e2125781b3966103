/**
 * The image workers: every decode, VOI LUT, resize, JPEG/PNG encoding and conversion to Explicit VR Little
 * Endian of web/ runs in these threads (image-worker.ts), so a thumbnail never delays a C-STORE answer on
 * the event loop. Bounded in threads and in tasks waiting: past that, a request gets 503 with Retry-After.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { Piscina } from 'piscina';
import { workerStart } from '../runtime/worker-start.js';
import { HttpError } from './http-errors.js';
import type { RenderOptions } from './image-render.js';
import type { ImageTask, ImageTaskResult } from './image-worker.js';

/**
 * How a task is admitted. `continuing`: a later part of an answer whose status line is out, which a 503 could
 * only cut short; it waits for a thread however long the queue (an answer makes its parts one at a time).
 */
export interface Admission {
  continuing?: boolean;
}

/** What the routes ask of the image workers. */
export interface ImageWork {
  /** One frame of a stored file as JPEG or PNG. */
  render(path: string, options: RenderOptions, admission?: Admission): Promise<Buffer>;
  /** A stored file in Explicit VR Little Endian; `stored` is its syntax, one convertibleToExplicitLittleEndian allows. */
  explicitLittleEndian(path: string, stored: string, admission?: Admission): Promise<Buffer>;
}

/** Seconds a client is told to wait when the queue is full: a few thumbnails' time. */
export const RETRY_AFTER_SECONDS = 2;
/** A thread with nothing to do for this long ends (its codecs, some 40 MB, with it); the next task starts one. */
const IDLE_THREAD_MS = 5 * 60_000;

/** http.imageThreads: 0 means one fewer than the cores, at least one (the event loop keeps a core). */
export function imageThreads(configured: number): number {
  return configured > 0 ? configured : Math.max(1, availableParallelism() - 1);
}

export class ImagePool implements ImageWork {
  private readonly pool: Piscina<ImageTask, ImageTaskResult>;
  /** Tasks running or waiting. */
  private pending = 0;
  /** Tasks finished, either way, since the pool was made. */
  private finished = 0;
  private closed = false;

  constructor(private readonly options: { threads: number; queue: number; logger: Logger }) {
    // scripts/build.mjs bundles image-worker.cjs beside the desktop bundle.
    const worker = workerStart(import.meta.url, 'image-worker');
    this.pool = new Piscina({
      filename: worker.filename,
      minThreads: 0,
      maxThreads: options.threads,
      idleTimeout: IDLE_THREAD_MS,
      execArgv: worker.execArgv,
    });
  }

  render(path: string, options: RenderOptions, admission: Admission = {}): Promise<Buffer> {
    return this.run({ kind: 'render', path, options }, admission);
  }

  explicitLittleEndian(path: string, stored: string, admission: Admission = {}): Promise<Buffer> {
    return this.run({ kind: 'explicit-le', path, stored }, admission);
  }

  private async run(task: ImageTask, admission: Admission): Promise<Buffer> {
    const { threads, queue, logger } = this.options;
    const retry = { 'retry-after': String(RETRY_AFTER_SECONDS) };
    if (this.closed) throw new HttpError(503, 'the appliance is stopping', retry);
    if (this.pending >= threads + queue && !admission.continuing) {
      logger.warn({ event: 'image-queue-full', threads, queue, kind: task.kind }, 'image work refused: every thread busy and the queue full');
      throw new HttpError(503, `the image workers are busy (${threads} threads, ${queue} waiting, http.imageThreads and http.imageQueue); ` +
        `retry in ${RETRY_AFTER_SECONDS} s`, retry);
    }
    this.pending++;
    let result: ImageTaskResult;
    try {
      result = await this.pool.run(task);
    } finally {
      this.pending--;
      this.finished++;
    }
    if (!(result instanceof Uint8Array)) throw new HttpError(result.status, result.error);
    return Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  }

  /** Threads alive, tasks running or waiting, and tasks finished. */
  get load(): { threads: number; tasks: number; finished: number } {
    return { threads: this.pool.threads.length, tasks: this.pending, finished: this.finished };
  }

  /** Ends every thread; tasks still running or waiting fail. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool.destroy();
  }
}
