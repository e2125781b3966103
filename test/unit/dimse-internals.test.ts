import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, Socket, type AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  assertInternals, clientSocket, DCMJS_DIMSE_VERSION, generalPathBusy, holdClientAssociation, missingInternals, negotiatedAssociation,
} from '../../main/core/dimse/dcmjs-dimse-internals.js';

const { Scp, Client } = dimse;
dimse.log.setLevel('silent');
const { PresentationContextResult, Status, TransferSyntax } = dimse.constants;
const { CEchoRequest } = dimse.requests;
const { CEchoResponse } = dimse.responses;
type Association = Parameters<InstanceType<typeof Scp>['associationRequested']>[0];
type EchoRequest = Parameters<InstanceType<typeof Scp>['cEchoRequest']>[0];

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { dependencies: Record<string, string> };

/** Accepts every context and answers C-ECHO. */
class EchoScp extends Scp {
  override associationRequested(association: Association): void {
    for (const { context } of association.getPresentationContexts()) context.setResult(PresentationContextResult.Accept, TransferSyntax.ImplicitVRLittleEndian);
    this.sendAssociationAccept();
  }
  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }
  override cEchoRequest(request: EchoRequest, callback: (response: InstanceType<typeof CEchoResponse>) => void): void {
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }
}

describe("dcmjs-dimse's undocumented members, used by the SCP through one adapter", () => {
  test('package.json pins dcmjs-dimse to the exact version installed', () => {
    assert.equal(pkg.dependencies['dcmjs-dimse'], DCMJS_DIMSE_VERSION,
      'the adapter was written against one version; review main/core/dimse/dcmjs-dimse-internals.ts before changing it');
  });

  test('a new Scp has every method and field the adapter relies on', () => {
    const socket = new Socket();
    try {
      const missing = missingInternals(new Scp(socket, {}));
      assert.deepEqual(missing, [], `dcmjs-dimse ${DCMJS_DIMSE_VERSION} lacks: ${missing.join(', ')}`);
    } finally {
      socket.destroy();
    }
  });

  test('after an A-ASSOCIATE-RQ, its association field holds the association it hands to associationRequested', async () => {
    const seen: Array<{ sameAssociation: boolean; generalPathBusy: boolean }> = [];
    class ProbeScp extends Scp {
      override associationRequested(association: Association): void {
        seen.push({ sameAssociation: negotiatedAssociation(this) === association, generalPathBusy: generalPathBusy(this) });
        for (const { context } of association.getPresentationContexts()) {
          context.setResult(PresentationContextResult.Accept, TransferSyntax.ImplicitVRLittleEndian);
        }
        this.sendAssociationAccept();
      }
      override associationReleaseRequested(): void {
        this.sendAssociationReleaseResponse();
      }
      override cEchoRequest(request: EchoRequest, callback: (response: InstanceType<typeof CEchoResponse>) => void): void {
        const response = CEchoResponse.fromRequest(request);
        response.setStatus(Status.Success);
        callback(response);
      }
    }
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      sockets.add(socket);
      new ProbeScp(socket, {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = new Client();
      const request = new CEchoRequest();
      const status = new Promise<number>((resolve) => request.on('response', (response) => resolve(response.getStatus())));
      const closed = new Promise<void>((resolve, reject) => {
        client.on('closed', () => resolve());
        client.on('networkError', reject);
      });
      client.addRequest(request);
      client.send('127.0.0.1', (server.address() as AddressInfo).port, 'PROBESCU', 'PROBESCP');
      assert.equal(await status, Status.Success);
      await closed;
      assert.deepEqual(seen, [{ sameAssociation: true, generalPathBusy: false }]);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a Client held open after send() keeps its association while its queue is empty, and sends what we add', async () => {
    const sockets = new Set<Socket>();
    let associations = 0;
    const server = createServer((socket) => {
      sockets.add(socket);
      associations++;
      new EchoScp(socket, {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const client = new Client();
      const echo = () => {
        const request = new CEchoRequest();
        return { request, status: new Promise<number>((resolve) => request.on('response', (response) => resolve(response.getStatus()))) };
      };
      const first = echo();
      const closed = new Promise<void>((resolve, reject) => {
        client.on('closed', () => resolve());
        client.on('networkError', reject);
      });
      client.addRequest(first.request);
      client.send('127.0.0.1', (server.address() as AddressInfo).port, 'PROBESCU', 'PROBESCP');
      const held = holdClientAssociation(client);
      assert.equal(await first.status, Status.Success);
      assert.equal(clientSocket(client).remotePort, (server.address() as AddressInfo).port, 'clientSocket is the one connected to the SCP');
      // dcmjs-dimse alone releases as soon as its queue runs dry; held, the association waits for more.
      await sleep(100);
      const second = echo();
      assert.ok(held.accepts(second.request), 'the accepted context is found for a request added later');
      held.send(second.request);
      assert.equal(await second.status, Status.Success);
      held.release();
      await closed;
      assert.equal(associations, 1, 'both went over one association');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a member that a later version drops is named in the error', () => {
    const socket = new Socket();
    try {
      const scp = new Scp(socket, {});
      delete (scp as unknown as Record<string, unknown>).dimseStoreStream;
      assert.throws(() => assertInternals(scp), /dcmjs-dimse \S+ lacks Network\.dimseStoreStream, which main\/core\/dimse\/dcmjs-dimse-internals\.ts relies on/);
      const withoutMethods = { ...scp };
      assert.deepEqual(missingInternals(withoutMethods).filter((name) => name.includes('prototype')),
        ['Network.prototype._processPdu()', 'Network.prototype._reset()', 'Network.prototype._sendPDataTF()']);
    } finally {
      socket.destroy();
    }
  });
});
