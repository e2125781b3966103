// An archive that sends a whole answer and then closes its connection (Connection: close, or its keep-alive
// ran out) while the appliance has not read the body yet, e.g. because it is still writing an earlier
// instance to disk. The body must still arrive in full. With undici 7's HTTP/1 parser paused under
// backpressure, that FIN crashed the whole process with an uncatchable assertion (nodejs/undici#5360).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, test } from 'node:test';
import { ArchiveClient, Deadline } from '../../main/core/cloud/archive-client.js';

const BODY = Buffer.alloc(64 * 1024, 0x61);
let server: Server;
let port = 0;

before(async () => {
  server = createServer((socket) => {
    socket.once('data', () => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BODY.length}\r\nConnection: close\r\n\r\n`);
      socket.end(BODY); // everything, then FIN, whether or not the client has read it
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test('a whole answer followed by FIN before the body is read still arrives in full', async () => {
  const client = new ArchiveClient({ baseUrl: `http://127.0.0.1:${port}`, auth: { authorization: async () => undefined } });
  try {
    const deadline = new Deadline(10_000);
    const response = await client.get(client.url('/studies/1.2.3'), 'application/octet-stream', 'retrieve', deadline);
    assert.equal(response.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the upstream has finished and closed by now
    let size = 0;
    for await (const chunk of response.body) size += (chunk as Buffer).length;
    deadline.clear();
    assert.equal(size, BODY.length);
  } finally {
    await client.close();
  }
});
