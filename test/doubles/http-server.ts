// A loopback HTTP server on an ephemeral port that knows its open sockets, so a double can
// close them all on stop() or when it pretends to be down.
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

export interface LoopbackServer {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  /** Destroys every open connection (keep-alive ones too). */
  destroySockets(): void;
  /** Called for each new connection; return true to destroy it at once. */
  onConnection: ((socket: Socket) => boolean) | undefined;
  close(): Promise<void>;
}

export async function listenLoopback(handler: Handler, port = 0): Promise<LoopbackServer> {
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: 'double_failure', message: String(err) });
      else res.destroy();
    });
  });
  const state: LoopbackServer = {
    port: 0,
    origin: '',
    onConnection: undefined,
    destroySockets: () => {
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        state.destroySockets();
      }),
  };
  server.on('connection', (socket) => {
    if (state.onConnection?.(socket)) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  Object.assign(state, { port: address.port, origin: `http://127.0.0.1:${address.port}` });
  return state;
}

export async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export function sendJson(
  res: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = 'application/json; charset=utf-8',
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendEmpty(res: http.ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
}
