// An instance sent from its file by a C-STORE sub-operation (C-MOVE to storescp here) goes out a PDU at a time,
// each written once the socket has taken the one before: however large the file, what waits in the socket
// stays at a PDU or so, where dcmjs-dimse's own path reads the whole file and writes every PDU at once.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, Socket, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { PeerStoreSender } from '../../main/core/dimse/peer-sender.js';
import { storeRequest } from '../../main/core/dimse/sub-operations.js';
import { waitFor } from '../support/forward-harness.js';
import { startStorescp, type StorescpPeer } from '../support/peers.js';
import { makeStudy } from '../support/study.js';

const TIMEOUTS = { connectTimeout: 10_000, associationTimeout: 10_000, pduTimeout: 60_000 };
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';

let dir: string;
let dest: StorescpPeer;
/** Between the sender and storescp: stops reading from the sender once `stall` says so (once), until `go`. */
let proxy: Server;
let proxyPort: number;
let stall: (received: number) => boolean = () => false;
let go: (() => void) | undefined;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dicom-edge-send-from-file-'));
  dest = await startStorescp({ dir: join(dir, 'dest'), aet: 'DEST' });
  proxy = createServer((client) => {
    const upstream = connect(dest.port, '127.0.0.1');
    let received = 0;
    client.on('data', (chunk) => {
      upstream.write(chunk);
      received += chunk.length;
      if (stall(received)) {
        stall = () => false;
        client.pause();
        go = () => client.resume();
      }
    });
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyPort = (proxy.address() as AddressInfo).port;
});
after(async () => {
  await new Promise((resolve) => proxy?.close(resolve));
  await dest?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a 32 MB instance goes from its file to the move destination a PDU at a time, byte-identical', { timeout: 120_000 }, async () => {
  const [instance] = makeStudy({ series: 1, instancesPerSeries: 1, patientId: 'FROM-FILE', rows: 4096, columns: 4096 });
  const path = join(dir, 'large.dcm');
  await writeFile(path, instance!.buffer);
  // The most bytes ever waiting in the sender's socket, right after a write.
  let mostQueued = 0;
  const write = Socket.prototype.write;
  Socket.prototype.write = function queued(this: Socket, ...args: Parameters<Socket['write']>) {
    const result = write.apply(this, args);
    if (this.remotePort === proxyPort) mostQueued = Math.max(mostQueued, this.writableLength);
    return result;
  } as Socket['write'];
  // Once the data set has begun, the destination stops reading until the sender's socket holds bytes back.
  stall = (received) => received > 256 * 1024;
  const sender = new PeerStoreSender({ aeTitle: 'DEST', host: '127.0.0.1', port: proxyPort }, 'EDGE', TIMEOUTS,
    [{ sopClassUid: CT, transferSyntaxUid: EXPLICIT_LE }], pino({ level: 'silent' }));
  try {
    const request = storeRequest({ sopInstanceUid: instance!.sopInstanceUid, sopClassUid: CT, transferSyntaxUid: EXPLICIT_LE, path });
    const outcome = sender.send(request!);
    await waitFor(() => go !== undefined && mostQueued > 0, () => 'the sender never waited for the destination', 60_000);
    go!();
    assert.equal(await outcome, 'completed', dest.log());
  } finally {
    go?.();
    go = undefined;
    stall = () => false;
    sender.release();
    Socket.prototype.write = write;
  }
  const [name] = (await readdir(dest.dir)).filter((f) => f.includes(instance!.sopInstanceUid));
  assert.ok(name, 'storescp kept it');
  const got = await readFile(join(dest.dir, name));
  assert.ok(got.subarray(dataSetOffset(got)).equals(instance!.buffer.subarray(dataSetOffset(instance!.buffer))), 'the data set, byte for byte');
  assert.ok(mostQueued <= 1024 * 1024, `${mostQueued} bytes waited in the socket at most, of ${instance!.buffer.length}`);
});
