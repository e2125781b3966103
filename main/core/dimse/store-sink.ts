import { Readable, Writable } from 'node:stream';

/** Bytes gathered before they go to the file as one writev. */
const BATCH_BYTES = 256 * 1024;
const SINK_HIGH_WATER_MARK = 1024 * 1024;
/** Batches the archive may lag behind before the socket is paused. */
const OUT_HIGH_WATER_BATCHES = 4;

/**
 * The Writable that dcmjs-dimse (or the fast path) fills with one C-STORE data set, fragment by
 * fragment. It hands the fragments on, uncopied and gathered in batches of about 256 KB, to `out`
 * (an object-mode stream of Buffer[] that the archive spools with one writev per batch), and asks
 * for the socket to be paused while the archive lags behind, so an instance of any size needs only
 * a few MB of memory.
 *
 * `fail()` ends the Part 10 stream with an error (the archive then removes its temp file);
 * `discard()` keeps swallowing the rest of the data set after the archive has given up on it, so
 * the sender can finish and get its status.
 */
export class StoreSink extends Writable {
  readonly out = new Readable({ objectMode: true, highWaterMark: OUT_HIGH_WATER_BATCHES, read: () => this.release() });
  private pending: Buffer[];
  private pendingBytes: number;
  private discarding = false;
  private paused = false;
  private waitingForRead: (() => void) | undefined;

  constructor(prefix: Buffer, private readonly flowControl: { pause(): void; resume(): void }) {
    super({ highWaterMark: SINK_HIGH_WATER_MARK });
    this.pending = [prefix];
    this.pendingBytes = prefix.length;
    // The archive starts reading `out` only after its room check and its file open; a failure before then
    // stays in `out.errored` and is thrown to the archive's first read, so it must not count as unhandled.
    this.out.on('error', () => undefined);
    this.on('drain', () => this.resumeSender());
    // A Writable that is ending never emits 'drain': a sink paused by the data set's last fragment resumes here.
    this.on('finish', () => this.resumeSender());
  }

  private resumeSender(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flowControl.resume();
  }

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const ok = super.write(chunk as Buffer, encoding as BufferEncoding, callback as (error?: Error | null) => void);
    if (!ok && !this.paused) {
      this.paused = true;
      this.flowControl.pause();
    }
    return ok;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.discarding) return done();
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < BATCH_BYTES) return done();
    this.flush(done);
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.discarding) return done();
    this.flush(() => {
      if (!this.discarding) this.out.push(null);
      done();
    });
  }

  private flush(done: () => void): void {
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0 || this.out.destroyed || this.out.push(batch)) return done();
    this.waitingForRead = done;
  }

  private release(): void {
    const done = this.waitingForRead;
    this.waitingForRead = undefined;
    done?.();
  }

  /** The transfer broke off (abort, closed socket): the archive must not keep anything. */
  fail(reason: Error): void {
    this.discard();
    if (!this.out.destroyed) this.out.destroy(reason);
  }

  /** The archive no longer reads: swallow what is still coming. */
  discard(): void {
    if (this.discarding) return;
    this.discarding = true;
    this.pending = [];
    this.pendingBytes = 0;
    this.release();
    this.paused = false;
    this.flowControl.resume();
  }
}
