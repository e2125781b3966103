// Every writer that honours write()'s false waits through runtime/drained-or-closed.ts: the DIMSE senders
// (C-FIND and worklist responses, C-MOVE/C-GET data sets) and the spool file carry on when the stream closes
// instead of draining; a WADO-RS answer learns that its client went away. A wait happens per chunk, so none may
// leave a listener behind.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { drainedOrClosed } from '../../main/core/runtime/drained-or-closed.js';

const clientGone = () => new Error('the client went away');

/** A Writable of a 4-byte high-water mark whose writes complete only when `release` is called. */
function heldWritable(): { stream: Writable; release: () => void } {
  const held: Array<() => void> = [];
  const stream = new Writable({
    highWaterMark: 4,
    write(_chunk, _encoding, callback) {
      held.push(callback);
    },
  });
  return { stream, release: () => held.splice(0).forEach((callback) => callback()) };
}

function listeners(stream: Writable): { drain: number; close: number } {
  return { drain: stream.listenerCount('drain'), close: stream.listenerCount('close') };
}

/** Whether `promise` has settled by the next turn of the event loop (nothing in these tests settles it by time). */
async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => (settled = true), () => (settled = true));
  await nextTurn();
  return settled;
}

describe('waiting out a writable stream\'s backpressure (drainedOrClosed)', () => {
  test('resolves once the stream drains, not before, and takes its listeners off', async () => {
    const { stream, release } = heldWritable();
    assert.equal(stream.write(Buffer.alloc(8)), false);
    const waited = drainedOrClosed(stream);
    assert.deepEqual(listeners(stream), { drain: 1, close: 1 });
    assert.equal(await settledYet(waited), false, 'waits while the write is held');
    release();
    await waited;
    assert.deepEqual(listeners(stream), { drain: 0, close: 0 });
  });

  test('resolves when the stream closes without draining: the DIMSE senders and the spool carry on', async () => {
    const { stream } = heldWritable();
    assert.equal(stream.write(Buffer.alloc(8)), false);
    const waited = drainedOrClosed(stream);
    stream.destroy();
    await waited;
    assert.deepEqual(listeners(stream), { drain: 0, close: 0 });
  });

  test('with cutShort, a stream destroyed before it finished rejects with that error (a client gone)', async () => {
    const { stream } = heldWritable();
    assert.equal(stream.write(Buffer.alloc(8)), false);
    const waited = drainedOrClosed(stream, clientGone);
    stream.destroy();
    await assert.rejects(waited, /the client went away/);
    assert.deepEqual(listeners(stream), { drain: 0, close: 0 });
  });

  test('with cutShort, a drain resolves, and so does a close after every byte was written', async () => {
    const drains = heldWritable();
    assert.equal(drains.stream.write(Buffer.alloc(8)), false);
    const drained = drainedOrClosed(drains.stream, clientGone);
    drains.release();
    await drained;
    assert.deepEqual(listeners(drains.stream), { drain: 0, close: 0 });

    // Ended while the write is held: no 'drain' comes, the stream finishes and closes.
    const finishes = heldWritable();
    let drainEvents = 0;
    assert.equal(finishes.stream.write(Buffer.alloc(8)), false);
    const closed = drainedOrClosed(finishes.stream, clientGone);
    finishes.stream.on('drain', () => drainEvents++);
    finishes.stream.end();
    finishes.release();
    await closed;
    assert.equal(drainEvents, 0, 'settled by the close');
    assert.ok(finishes.stream.destroyed && finishes.stream.writableFinished);
    assert.equal(finishes.stream.listenerCount('close'), 0);
  });

  test('many waits, by drain and by close, leave no listener behind', async () => {
    const { stream, release } = heldWritable();
    for (let round = 0; round < 1_000; round++) {
      assert.equal(stream.write(Buffer.alloc(8)), false);
      const waited = drainedOrClosed(stream, round % 2 === 0 ? clientGone : undefined);
      release();
      await waited;
    }
    assert.deepEqual(listeners(stream), { drain: 0, close: 0 });
    for (let round = 0; round < 100; round++) {
      const { stream: closing } = heldWritable();
      closing.write(Buffer.alloc(8));
      const waited = drainedOrClosed(closing);
      closing.destroy();
      await waited;
      assert.deepEqual(listeners(closing), { drain: 0, close: 0 });
    }
  });

  describe('on a TCP socket, as the DIMSE senders use it', () => {
    let server: Server;
    let port: number;
    const peers = new Set<Socket>();

    before(async () => {
      server = createServer((peer) => {
        peers.add(peer.on('error', () => undefined).on('close', () => peers.delete(peer)));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      for (const peer of peers) peer.destroy();
      await new Promise((resolve) => server.close(resolve));
    });

    /** A connected socket, and its peer's end, which reads only when resumed. */
    async function connect(): Promise<{ socket: Socket; peer: Socket }> {
      const accepted = once(server, 'connection') as Promise<[Socket]>;
      const socket = createConnection({ port, host: '127.0.0.1' });
      await once(socket, 'connect');
      const [peer] = await accepted;
      return { socket, peer };
    }

    /**
     * Writes until a mebibyte waits in the socket's own buffer, which happens only once the kernel refuses more:
     * with the peer not reading, nothing drains then. Stopping at write()'s first false would not do: the kernel
     * may still take those bytes, and the socket drain, while the peer reads nothing (it did under load).
     */
    function fill(socket: Socket): void {
      const chunk = Buffer.alloc(64 * 1024);
      while (socket.writableLength < 1024 * 1024) socket.write(chunk);
    }

    const socketListeners = (socket: Socket) => ({ drain: socket.listenerCount('drain'), close: socket.listenerCount('close') });

    test('resolves as the socket drains, many times over, leaving its listeners as they were', async () => {
      const { socket, peer } = await connect();
      const before = socketListeners(socket);
      for (let round = 0; round < 20; round++) {
        fill(socket);
        const waited = drainedOrClosed(socket);
        assert.equal(await settledYet(waited), false, 'waits while the peer is not reading');
        peer.resume();
        await waited;
        assert.equal(socket.writableLength, 0);
        peer.pause();
      }
      assert.deepEqual(socketListeners(socket), before);
      socket.destroy();
      peer.destroy();
    });

    test('resolves when the socket closes before it drains; with cutShort, rejects', async () => {
      for (const cutShort of [undefined, clientGone]) {
        const { socket, peer } = await connect();
        fill(socket);
        const before = socketListeners(socket);
        const waited = drainedOrClosed(socket, cutShort);
        socket.destroy();
        if (cutShort) await assert.rejects(waited, /the client went away/);
        else await waited;
        assert.deepEqual(socketListeners(socket), before);
        peer.destroy();
      }
    });
  });
});
