// The appliance's own associations (C-MOVE sub-operations, Storage Commitment reports on a new association)
// turn Nagle's algorithm off: dcmjs-dimse writes each message in several writes, and with Nagle on the last
// one waits for the peer's delayed ACK (~40 ms per message on Linux).
import assert from 'node:assert/strict';
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import pino from 'pino';
import { eventReportRequest, sendReportOnNewAssociation } from '../../main/core/dimse/commitment-report.js';
import { PeerStoreSender } from '../../main/core/dimse/peer-sender.js';
import { newUid } from '../support/uid.js';

dimse.log.setLevel('silent');
const { Dataset } = dimse;
const { CStoreRequest } = dimse.requests;
const CT = '1.2.840.10008.5.1.4.1.1.2';
const TIMEOUTS = { connectTimeout: 5_000, associationTimeout: 5_000, pduTimeout: 5_000 };

describe('outgoing associations turn Nagle off', () => {
  let server: Server;
  let port: number;
  /** Local ports of client sockets that had setNoDelay(true) called. */
  const noDelayPorts = new Set<number>();
  const original = Socket.prototype.setNoDelay;

  before(async () => {
    Socket.prototype.setNoDelay = function (this: Socket, noDelay?: boolean) {
      if (noDelay !== false) {
        if (this.localPort !== undefined) noDelayPorts.add(this.localPort);
        else this.once('connect', () => noDelayPorts.add(this.localPort!));
      }
      return original.call(this, noDelay);
    };
    // A peer that accepts the connection and then closes it: enough to see the socket the client made.
    server = createServer((socket) => socket.on('data', () => socket.destroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    Socket.prototype.setNoDelay = original;
    await new Promise((resolve) => server.close(resolve));
  });

  /** The client port of the next connection the server accepts. */
  const nextConnection = () => new Promise<number>((resolve) => server.once('connection', (socket) => resolve(socket.remotePort!)));

  test('the C-MOVE destination association (PeerStoreSender)', async () => {
    const connected = nextConnection();
    const sender = new PeerStoreSender({ aeTitle: 'DEST', host: '127.0.0.1', port }, 'EDGE', TIMEOUTS,
      [{ sopClassUid: CT, transferSyntaxUid: '1.2.840.10008.1.2.1' }], pino({ level: 'silent' }));
    const request = new CStoreRequest(new Dataset({ SOPClassUID: CT, SOPInstanceUID: newUid() }, '1.2.840.10008.1.2.1'));
    const outcome = sender.send(request);
    const clientPort = await connected;
    assert.equal(await outcome, 'failed', 'the peer closed without an answer');
    assert.ok(noDelayPorts.has(clientPort), 'setNoDelay(true) on the socket to the move destination');
  });

  test('a Storage Commitment report on a new association', async () => {
    const connected = nextConnection();
    const report = sendReportOnNewAssociation({ aeTitle: 'MODALITY', host: '127.0.0.1', port }, 'EDGE',
      eventReportRequest(newUid(), { committed: [{ sopClassUid: CT, sopInstanceUid: newUid() }], failed: [] }), TIMEOUTS);
    const clientPort = await connected;
    await assert.rejects(report);
    assert.ok(noDelayPorts.has(clientPort), 'setNoDelay(true) on the socket to the modality');
  });
});
