/**
 * The ingest thread: the per-instance work of the ingest that grows with the instance (its DICOM JSON: parse up to
 * Pixel Data, JSON, gzip; for data fetched from the archive also its SHA-256) runs in a worker thread
 * (ingest-worker.ts, the pattern of web/image-pool.ts), so the event loop that receives instances, streams them to
 * readers and answers senders never runs it. Every way in shares it: DIMSE, STOW-RS, read-through, recovery.
 */
import { Piscina } from 'piscina';
import { workerStart } from '../runtime/worker-start.js';
import type { DescribedFile, StoredMetadata } from './instance-metadata.js';
import type { IngestTask, IngestTaskResult } from './ingest-worker.js';

/** What the archive asks of the ingest thread; tests give one of their own. */
export interface IngestWork {
  /** Resolves once the thread is up and has loaded its modules; rejects with why it cannot start. */
  ready(): Promise<void>;
  /** The packed description of an instance (and its text with `withText`); rejects with the reason it cannot be made. */
  describe(file: DescribedFile, options?: { withText?: boolean }): Promise<StoredMetadata & { text?: string }>;
  /**
   * The SHA-256 of a spooled file (read back) and its description; `undescribed` says why there is none. Rejects
   * when the file cannot be read whole, or the thread fails.
   */
  digest(file: { path: string; sizeBytes: number }): Promise<{ sha256: string; metadata?: StoredMetadata; undescribed?: string }>;
  close(): Promise<void>;
}

function packed(metadata: { encoding: 'gzip' | 'identity'; json: Uint8Array }): StoredMetadata {
  return { encoding: metadata.encoding, json: Buffer.from(metadata.json.buffer, metadata.json.byteOffset, metadata.json.byteLength) };
}

export class IngestThread implements IngestWork {
  private readonly pool: Piscina<IngestTask, IngestTaskResult>;

  /**
   * `filename`: the worker file (tests give a failing one). `onError`: a thread that fails outside a task (at
   * load, or when piscina starts it again to keep one up); tasks under way fail with their own error.
   */
  constructor(options: { filename?: string; onError?: (error: Error) => void } = {}) {
    // scripts/build.mjs bundles ingest-worker.cjs beside the desktop bundle.
    const worker = workerStart(import.meta.url, 'ingest-worker');
    this.pool = new Piscina({
      filename: options.filename ?? worker.filename,
      // Always up: an instance that arrives after a quiet hour must not wait for a thread to start and load its parser.
      minThreads: 1,
      maxThreads: 1,
      execArgv: worker.execArgv,
    });
    // Unheard, a pool's 'error' event would end the process.
    this.pool.on('error', (error: Error) => options.onError?.(error));
  }

  async ready(): Promise<void> {
    const result = await this.run({ kind: 'ready' });
    if (result.kind !== 'ready') throw new Error(`the ingest thread answered a start with ${result.kind}`);
  }

  async describe(file: DescribedFile, options: { withText?: boolean } = {}): Promise<StoredMetadata & { text?: string }> {
    // The first bytes go over in a buffer of their own, moved rather than copied a second time; a slice of a larger
    // buffer would take all of that buffer with it.
    const head = file.head ? new Uint8Array(file.head) : undefined;
    const result = await this.run(
      { kind: 'describe', file: { path: file.path, sizeBytes: file.sizeBytes, head }, withText: options.withText ?? false },
      head ? [head.buffer] : undefined,
    );
    if (result.kind === 'failed') throw new Error(result.error);
    if (result.kind !== 'described') throw new Error(`the ingest thread answered a description with ${result.kind}`);
    return { ...packed(result.metadata), text: result.text };
  }

  async digest(file: { path: string; sizeBytes: number }): Promise<{ sha256: string; metadata?: StoredMetadata; undescribed?: string }> {
    const result = await this.run({ kind: 'digest', path: file.path, sizeBytes: file.sizeBytes });
    if (result.kind === 'failed') throw new Error(`the file could not be hashed: ${result.error}`);
    if (result.kind !== 'digested') throw new Error(`the ingest thread answered a digest with ${result.kind}`);
    return { sha256: result.sha256, metadata: result.metadata && packed(result.metadata), undescribed: result.undescribed };
  }

  /** Ends the thread; tasks still under way fail. */
  async close(): Promise<void> {
    await this.pool.destroy();
  }

  private async run(task: IngestTask, transferList?: ArrayBufferLike[]): Promise<IngestTaskResult> {
    try {
      return await this.pool.run(task, transferList ? { transferList: transferList as ArrayBuffer[] } : {});
    } catch (error) {
      throw new Error(`the ingest thread failed: ${(error as Error)?.message ?? String(error)}`);
    }
  }
}
