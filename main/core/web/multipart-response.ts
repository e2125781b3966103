import { closeSync, open, read } from 'node:fs';
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import { MultipartFraming } from '../multipart/writer.js';

/** A part of a multipart/related response: a stored file sent as it is, or bytes made on demand. */
export type ResponsePart =
  | { contentType: string; file: { path: string; size: number } }
  | { contentType: string; bytes: () => Promise<Uint8Array> | Uint8Array };

/** File bytes are read in chunks of this size; a part's headers go into the same buffer as its first chunk. */
const CHUNK_BYTES = 1024 * 1024;
const HEADER_ROOM = 4096;
/** Files opened and read ahead of the one being sent, so the disk and the socket work at the same time. */
const READ_AHEAD = 4;

/**
 * Sends a multipart/related response written straight to the socket, framed by the one multipart writer
 * (multipart/writer.ts) and fed by a file pump of its own. File parts are read in chunks into a
 * small per-response pool of buffers that are reused once the socket has taken them (a long series makes
 * no garbage and holds at most (READ_AHEAD + 2) MiB), and the next files are opened and their first
 * chunk read while the current one is sent. With every size known, the response has a Content-Length.
 */
export async function sendMultipart(
  reply: FastifyReply,
  type: string,
  parts: ResponsePart[],
  /** A failure once the status line is out: the connection is cut and this hears why. */
  onLateError: (error: unknown) => void,
): Promise<void> {
  const framing = new MultipartFraming();
  const heads = parts.map((part, i) => framing.head(i, part.contentType));
  const closing = framing.closing(parts.length);
  let length: number | undefined = closing.length;
  parts.forEach((part, i) => {
    length = length === undefined || !('file' in part) ? undefined : length + heads[i]!.length + part.file.size;
  });

  const pool = new BufferPool(READ_AHEAD + 2, HEADER_ROOM + CHUNK_BYTES);
  const loads: Array<Promise<FirstChunk> | undefined> = [];
  const startLoads = (upTo: number) => {
    for (let i = loads.length; i < Math.min(parts.length, upTo); i++) {
      const part = parts[i]!;
      const load = 'file' in part ? loadFirstChunk(part.file, heads[i]!, pool) : undefined;
      load?.catch(() => undefined);
      loads.push(load);
    }
  };
  const cleanUp = async () => {
    for (const load of loads) {
      const first = await load?.catch(() => undefined);
      if (first && !first.closed) closeQuietly(first.fd);
    }
  };

  startLoads(READ_AHEAD);
  // A first part that cannot be had (a file that cannot be read, image workers too busy) still gets a proper error response.
  let firstBytes: Uint8Array | undefined;
  try {
    await loads[0];
    const first = parts[0];
    if (first && 'bytes' in first) firstBytes = await first.bytes();
  } catch (error) {
    await cleanUp();
    throw error;
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string | number | string[]>),
    'content-type': framing.contentType(type),
    ...(length !== undefined ? { 'content-length': length } : {}),
  });
  // Once the client is gone, nothing waits on buffers the socket may never hand back.
  const out = new ResponseWriter(res, () => pool.unbound());
  try {
    for (let i = 0; i < parts.length; i++) {
      startLoads(i + READ_AHEAD);
      const part = parts[i]!;
      if ('file' in part) {
        const first = (await loads[i])!;
        await out.write(first.buffer.subarray(0, first.used), () => pool.give(first.buffer));
        let position = first.fileBytes;
        while (position < part.file.size && !out.gone) {
          const buffer = await pool.take();
          const want = Math.min(CHUNK_BYTES, part.file.size - position);
          const got = await readFully(first.fd, buffer, 0, want, position, part.file.path);
          await out.write(buffer.subarray(0, got), () => pool.give(buffer));
          position += got;
        }
        first.closed = true;
        closeQuietly(first.fd);
      } else {
        await out.write(heads[i]!);
        await out.write(i === 0 && firstBytes ? firstBytes : await part.bytes());
      }
      if (out.gone) break;
    }
    if (!out.gone) res.end(closing);
  } catch (error) {
    res.destroy();
    onLateError(error);
  } finally {
    await cleanUp();
  }
}

interface FirstChunk {
  fd: number;
  buffer: Buffer;
  /** Bytes of `buffer` in use: the part's headers, then the file's first bytes. */
  used: number;
  fileBytes: number;
  closed: boolean;
}

async function loadFirstChunk(file: { path: string; size: number }, head: Buffer, pool: BufferPool): Promise<FirstChunk> {
  const buffer = await pool.take();
  let fd: number | undefined;
  try {
    if (head.length > HEADER_ROOM) throw new Error(`part headers of ${head.length} bytes`);
    head.copy(buffer, 0);
    fd = await new Promise<number>((resolve, reject) => open(file.path, 'r', (error, fd) => (error ? reject(error) : resolve(fd))));
    const want = Math.min(CHUNK_BYTES, file.size);
    const got = await readFully(fd, buffer, head.length, want, 0, file.path);
    return { fd, buffer, used: head.length + got, fileBytes: got, closed: false };
  } catch (error) {
    pool.give(buffer);
    if (fd !== undefined) closeQuietly(fd);
    throw error;
  }
}

/** Reads exactly `length` bytes; a file shorter than its index row is an error (the Content-Length is already out). */
async function readFully(fd: number, buffer: Buffer, offset: number, length: number, position: number, path: string): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await new Promise<number>((resolve, reject) =>
      read(fd, buffer, offset + done, length - done, position + done, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))),
    );
    if (n === 0) throw new Error(`${path} ends after ${position + done} bytes, shorter than indexed`);
    done += n;
  }
  return done;
}

/**
 * Closing a file opened for reading does not wait on the disk; done synchronously it skips a thread-pool
 * round trip per instance, which costs the event loop more than the close itself.
 */
function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    /* already closed or gone: nothing to release */
  }
}

/** Fixed-size buffers handed out and given back; `take` waits while all are in use. */
class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: Array<(buffer: Buffer) => void> = [];
  private made = 0;

  constructor(private max: number, private readonly size: number) {}

  /** From now on `take` never waits. */
  unbound(): void {
    this.max = Infinity;
    for (const next of this.waiting.splice(0)) next(Buffer.allocUnsafeSlow(this.size));
  }

  take(): Promise<Buffer> {
    const buffer = this.free.pop();
    if (buffer) return Promise.resolve(buffer);
    if (this.made < this.max) {
      this.made++;
      return Promise.resolve(Buffer.allocUnsafeSlow(this.size));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  give(buffer: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(buffer);
    else this.free.push(buffer);
  }
}

/** res.write with backpressure; `gone` once the client has gone away. */
class ResponseWriter {
  gone = false;
  private drainWaiters: Array<() => void> = [];

  constructor(private readonly res: ServerResponse, onGone: () => void) {
    const wake = () => {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      waiters.forEach((w) => w());
    };
    res.on('drain', wake);
    res.on('close', () => {
      if (!res.writableFinished) {
        this.gone = true;
        onGone();
      }
      wake();
    });
  }

  /** Resolves when more may be written; `written` runs once the socket no longer needs the bytes. */
  write(bytes: Uint8Array, written?: () => void): Promise<void> | void {
    if (this.gone || this.res.destroyed) {
      this.gone = true;
      written?.();
      return;
    }
    const ok = this.res.write(bytes, written ? () => written() : undefined);
    if (ok) return;
    if (this.res.destroyed) {
      this.gone = true;
      return;
    }
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }
}
