/**
 * Waiting out a writable stream's backpressure, for every writer that honours write()'s false (DIMSE responses
 * and data sets on a socket, a spool file, a WADO-RS answer). The wait ends at 'drain', and also at 'close': a
 * stream that closed (destroyed, failed, its peer gone) never drains, and a writer waiting on 'drain' alone would
 * hang. Plain listeners rather than events.once with an AbortSignal: writers wait here for every chunk of a study,
 * and each aborted once() costs a DOMException; a wait costs one promise and its one listener function.
 */
import type { Writable } from 'node:stream';

/**
 * Resolves once `stream` drains or closes, whichever is first, and leaves no listener on it. With `cutShort`,
 * a stream destroyed before it finished writing (e.g. a client that went away) rejects with `cutShort()`
 * instead, for a writer to whom that close means its bytes did not all leave; give a function made once, at
 * module level, so that a wait allocates nothing more.
 */
export function drainedOrClosed(stream: Writable, cutShort?: () => Error): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = () => {
      stream.off('drain', settle);
      stream.off('close', settle);
      if (cutShort !== undefined && stream.destroyed && !stream.writableFinished) reject(cutShort());
      else resolve();
    };
    stream.on('drain', settle);
    stream.on('close', settle);
  });
}
