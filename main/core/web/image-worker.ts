/**
 * An image worker thread of the pool in image-pool.ts (piscina loads this file in each thread): rendering
 * (decode, VOI LUT, crop, resize, JPEG/PNG) and conversion to Explicit VR Little Endian, one task at a time.
 * The file is read here, so its bytes never pass through the event loop.
 */
import { readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';
import { move } from 'piscina';
import { asExplicitLittleEndian } from './explicit-le-convert.js';
import { HttpError } from './http-errors.js';
import { renderImage, type RenderOptions } from './image-render.js';

/** Nice value of an image thread: when cores are short, the event loop (and its C-STORE answers) runs first. */
const WORKER_NICENESS = 10;
// On Linux a nice value belongs to a thread, so this lowers this worker thread alone (elsewhere it would be the whole process).
if (process.platform === 'linux') setPriority(0, WORKER_NICENESS);

export type ImageTask =
  | { kind: 'render'; path: string; options: RenderOptions }
  | { kind: 'explicit-le'; path: string; stored: string };

/**
 * The bytes made, or the status and reason of a request this task cannot serve: an HttpError would lose its
 * status crossing threads. Any other failure is thrown, and reaches the caller as an Error.
 */
export type ImageTaskResult = Uint8Array | { status: number; error: string };

export default async function imageTask(task: ImageTask): Promise<ImageTaskResult> {
  let bytes: Uint8Array;
  try {
    const file = await readFile(task.path);
    bytes = task.kind === 'render' ? await renderImage(file, task.options) : await asExplicitLittleEndian(file, task.stored);
  } catch (error) {
    if (error instanceof HttpError) return { status: error.status, error: error.message };
    throw error;
  }
  // Moved, not copied, to the event loop's thread. Only a buffer of its own can be: not a slice of a shared one,
  // nor sharp's output, which is native memory (an image: copied here, off the event loop).
  const own = task.kind === 'explicit-le' && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
  return move(own) as Uint8Array;
}
