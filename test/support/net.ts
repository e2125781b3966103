import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Keeps the client sockets this process opens from now on (node's `net.client.socket` channel), so a test that cuts
 * a connection on the server side can wait until the client has seen it: once a client socket's 'close' is out, the
 * HTTP client has ended (destroyed) its response, whatever its reader has read of it. `stop` ends the watch.
 */
export function watchClientSockets(): { closed(serverSide: Socket): Promise<void>; stop(): void } {
  const sockets: Socket[] = [];
  const onSocket = (message: unknown) => sockets.push((message as { socket: Socket }).socket);
  subscribe('net.client.socket', onSocket);
  return {
    closed(serverSide) {
      const client = sockets.find((socket) => socket.localPort === serverSide.remotePort);
      if (!client) return Promise.reject(new Error(`no client socket of this process is at port ${serverSide.remotePort}`));
      return client.closed ? Promise.resolve() : once(client, 'close').then(() => undefined);
    },
    stop: () => void unsubscribe('net.client.socket', onSocket),
  };
}

/**
 * Ports this process has handed out: the kernel may give a port that was just closed again at once, and two
 * listeners of one test (an appliance's DIMSE and HTTP ports) would then collide.
 */
const handedOut = new Set<number>();

/** A TCP port that was free on 127.0.0.1 a moment ago, and not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await unusedPort();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('the kernel kept giving ports this process had already handed out');
}

function unusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a temporary listener'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

function tryConnect(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Resolves once host:port accepts TCP connections; rejects after timeoutMs. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await tryConnect(port, host)) return;
    await sleep(50);
  }
  throw new Error(`${host}:${port} did not accept TCP connections within ${timeoutMs} ms`);
}
