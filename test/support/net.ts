import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
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
 * Ports this process has handed out: a port just closed may be free again at once, and two listeners of one test
 * (an appliance's DIMSE and HTTP ports) would then collide.
 */
const handedOut = new Set<number>();

/**
 * Where free ports are looked for: below the kernel's ephemeral range, never in it. The kernel takes the local port
 * of every outgoing connection (of this process, of the appliance, of a peer) from that range, so a port found free
 * there can be taken by a connection before the peer that was to listen on it binds it (seen as EADDRINUSE).
 */
const LISTEN_PORTS = listenPortRange();

function listenPortRange(): { low: number; high: number } {
  const rangeFile = '/proc/sys/net/ipv4/ip_local_port_range';
  const [ephemeralLow, ephemeralHigh] = existsSync(rangeFile)
    ? readFileSync(rangeFile, 'utf8').trim().split(/\s+/).map(Number)
    : [49152, 65535];
  const low = 10_000;
  if (ephemeralLow! - low >= 5_000) return { low, high: ephemeralLow! - 1 };
  if (65_535 - ephemeralHigh! >= 5_000) return { low: ephemeralHigh! + 1, high: 65_535 };
  throw new Error(`the ephemeral port range ${ephemeralLow}-${ephemeralHigh} (${rangeFile}) leaves no 5000 ports above 10000 for test listeners`);
}

/** A TCP port outside the ephemeral range that was free on 127.0.0.1 a moment ago, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LISTEN_PORTS.low + Math.floor(Math.random() * (LISTEN_PORTS.high - LISTEN_PORTS.low + 1));
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port found in ${LISTEN_PORTS.low}-${LISTEN_PORTS.high} after 200 tries`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
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
