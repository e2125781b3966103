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
 * Where free ports are looked for: outside the kernel's ephemeral range. The kernel takes the local port of every
 * outgoing connection (of this process, of the appliance, of a peer) from that range, so a port found free there can
 * be taken by a connection before the peer that was to listen on it binds it (seen as EADDRINUSE). On a machine whose
 * ephemeral range leaves too little room, ports come from the kernel as before, and stderr says so once.
 */
const LISTEN_PORTS = listenPortsOf('/proc/sys/net/ipv4/ip_local_port_range');

function listenPortsOf(rangeFile: string): { low: number; high: number } | undefined {
  if (!existsSync(rangeFile)) return listenPortsOutside(49_152, 65_535);
  const [ephemeralLow, ephemeralHigh] = readFileSync(rangeFile, 'utf8').trim().split(/\s+/).map(Number);
  const ports = listenPortsOutside(ephemeralLow!, ephemeralHigh!);
  if (ports === undefined) {
    process.stderr.write(`test listeners take ports in the ephemeral range ${ephemeralLow}-${ephemeralHigh} (${rangeFile}): ` +
      'it leaves too few outside it, so an outgoing connection may take one first\n');
  }
  return ports;
}

/** The ports from 10000 up, outside the ephemeral range given, that test listeners use; undefined if under 2000. */
export function listenPortsOutside(ephemeralLow: number, ephemeralHigh: number): { low: number; high: number } | undefined {
  const below = { low: 10_000, high: ephemeralLow - 1 };
  const above = { low: Math.max(ephemeralHigh + 1, 10_000), high: 65_535 };
  return [below, above].find((range) => range.high - range.low + 1 >= 2_000);
}

/** A TCP port, outside the ephemeral range where it can, that was free on 127.0.0.1 a moment ago, not handed out before by this process. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LISTEN_PORTS === undefined
      ? await kernelPickedPort()
      : LISTEN_PORTS.low + Math.floor(Math.random() * (LISTEN_PORTS.high - LISTEN_PORTS.low + 1));
    if (handedOut.has(port) || !(await canListen(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('no free port found after 200 tries');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function kernelPickedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
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
