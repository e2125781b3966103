import type { IncomingMessage } from 'node:http';

/**
 * Watches a request whose body is still arriving and calls `onIdle` once the sender has sent nothing for
 * `idleMs`: nothing new read from the connection while nothing received waits for the handler. A handler
 * that is slow to read (a busy disk) is not the sender stalling, and does not count. Watching the socket's
 * byte count costs nothing per chunk and leaves the body stream as it is.
 */
export function watchBodyIdle(request: IncomingMessage, idleMs: number, onIdle: () => void): void {
  if (request.complete) return;
  const socket = request.socket;
  let bytesRead = socket.bytesRead;
  let progressAt = Date.now();
  const timer = setInterval(() => {
    if (request.complete || socket.destroyed) return stop();
    const now = Date.now();
    if (socket.bytesRead !== bytesRead || request.readableLength > 0) {
      bytesRead = socket.bytesRead;
      progressAt = now;
      return;
    }
    if (now - progressAt >= idleMs) {
      stop();
      onIdle();
    }
  }, Math.max(100, Math.min(1_000, idleMs / 4)));
  timer.unref();
  const stop = () => clearInterval(timer);
  request.once('end', stop);
  request.once('close', stop);
}

/** The answer to a request cut for taking too long, written straight to its connection as Node does for requestTimeout. */
export function requestTimeoutResponse(reason: string): string {
  const body = JSON.stringify({ status: 408, error: reason });
  return `HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}
