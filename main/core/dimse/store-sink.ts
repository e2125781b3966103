import { PassThrough, Writable } from 'node:stream';

const COALESCE_BYTES = 256 * 1024;
const SINK_HIGH_WATER_MARK = 1024 * 1024;

/**
 * The Writable that dcmjs-dimse fills with one C-STORE data set, fragment by fragment. It forwards
 * the bytes, coalesced into larger chunks, to `out` (the Part 10 stream the archive is ingesting),
 * and asks for the socket to be paused while the archive lags behind, so an instance of any size
 * needs only a few MB of memory.
 *
 * `fail()` ends the Part 10 stream with an error (the archive then removes its temp file);
 * `discard()` keeps swallowing the rest of the data set after the archive has given up on it, so
 * the sender can finish and get its status.
 */
export class StoreSink extends Writable {
  readonly out = new PassThrough({ highWaterMark: COALESCE_BYTES });
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;
  private waitingForDrain: (() => void) | undefined;

  constructor(prefix: Buffer, private readonly flowControl: { pause(): void; resume(): void }) {
    super({ highWaterMark: SINK_HIGH_WATER_MARK });
    this.out.write(prefix);
    this.on('drain', () => this.flowControl.resume());
  }

  override write(chunk: unknown, encoding?: unknown, callback?: unknown): boolean {
    const ok = super.write(chunk as Buffer, encoding as BufferEncoding, callback as (error?: Error | null) => void);
    if (!ok) this.flowControl.pause();
    return ok;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    if (this.discarding) return done();
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes < COALESCE_BYTES) return done();
    this.flush(done);
  }

  override _final(done: (error?: Error | null) => void): void {
    if (this.discarding) return done();
    this.flush(() => {
      if (!this.discarding) this.out.end();
      done();
    });
  }

  private flush(done: () => void): void {
    const bytes = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    if (this.out.destroyed || this.out.write(bytes)) return done();
    this.waitingForDrain = done;
    this.out.once('drain', () => this.release());
  }

  private release(): void {
    const done = this.waitingForDrain;
    this.waitingForDrain = undefined;
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
    this.flowControl.resume();
  }
}
