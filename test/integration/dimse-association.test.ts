import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import dimse from 'dcmjs-dimse';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import { makeInstance, makeMultiFrame } from '../support/instance.js';
import { freePort, requireTool, run, runOk } from '../support/peers.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

const countInstances = (h: DimseHarness) => (indexDb(h.archive).prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;

describe('DIMSE association policy against DCMTK', () => {
  let h: DimseHarness;
  before(async () => {
    requireTool('echoscu', 'dcmtk');
    h = await startDimse({}, { allowedCallingAes: ['GOODSCU', 'STORESCU'] });
  });
  after(async () => h?.stop());

  test('an unknown called AE title is rejected permanently and logged with peer and AE titles', async () => {
    const result = await run('echoscu', ['-aet', 'GOODSCU', '-aec', 'NOTUS', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Called AE Title Not Recognized/);
    const line = h.logs.find((l) => l.event === 'association-rejected' && l.calledAe === 'NOTUS');
    assert.ok(line, 'rejection logged');
    assert.equal(line.callingAe, 'GOODSCU');
    assert.match(String(line.peer), /^127\.0\.0\.1:\d+$/);
    assert.match(String(line.why), /called AE title/);
  });

  test('a calling AE title not on the allowlist is rejected permanently and logged', async () => {
    const result = await run('echoscu', ['-aet', 'STRANGER', '-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Calling AE Title Not Recognized/);
    assert.ok(h.logs.some((l) => l.event === 'association-rejected' && l.callingAe === 'STRANGER' && /allowlist/.test(String(l.why))));
  });

  test('an allowed calling AE title is accepted', async () => {
    await runOk('echoscu', ['-aet', 'GOODSCU', '-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
  });
});

describe('DIMSE association limit', () => {
  let h: DimseHarness;
  before(async () => {
    h = await startDimse({}, { maxAssociations: 1 });
  });
  after(async () => h?.stop());

  test('past the maximum a request is rejected transiently with local limit exceeded', async () => {
    // Hold the only slot: an echo whose association lingers for a few seconds after the response.
    const client = new dimse.Client();
    client.addRequest(new dimse.requests.CEchoRequest());
    const closed = new Promise((resolve) => client.on('closed', resolve));
    client.send('127.0.0.1', h.port, 'HOLDER', 'EDGE', { associationLingerTimeout: 4_000 });
    await waitFor('the holder association', () => h.service.openAssociations === 1);
    const result = await run(requireTool('echoscu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /Rejected Transient/);
    assert.match(result.stderr, /Local Limit Exceeded/);
    assert.ok(h.logs.some((l) => l.event === 'association-rejected' && /local limit exceeded/.test(String(l.why))));
    await closed;
    await waitFor('the slot to free up', () => h.service.openAssociations === 0);
    await runOk(requireTool('echoscu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port)], { timeoutMs: 20_000 });
  });
});

describe('DIMSE under 40 concurrent storescu with the default limit of 16', () => {
  let h: DimseHarness;
  before(async () => {
    h = await startDimse();
  });
  after(async () => h?.stop());

  test('every association is served or rejected with local limit exceeded, none hangs', async () => {
    const storescu = requireTool('storescu', 'dcmtk');
    const senders = await Promise.all(Array.from({ length: 40 }, async (_, n) => {
      const files: string[] = [];
      for (let i = 0; i < 5; i++) {
        const path = join(h.dir, `sender-${n}-${i}.dcm`);
        await writeFile(path, makeInstance({ rows: 128, columns: 128, instanceNumber: i + 1 }));
        files.push(path);
      }
      return files;
    }));
    const results = await Promise.all(senders.map((files) =>
      run(storescu, ['-aec', 'EDGE', '127.0.0.1', String(h.port), ...files], { timeoutMs: 90_000 })));
    let served = 0;
    for (const result of results) {
      if (result.code === 0) served++;
      else assert.match(result.stderr, /Local Limit Exceeded/, `a sender failed for another reason: ${result.stderr}`);
    }
    assert.ok(served >= 1);
    assert.equal(countInstances(h), served * 5);
    const openCounts = h.logs.filter((l) => l.event === 'association-accepted').map((l) => Number(l.open));
    assert.ok(Math.max(...openCounts) <= 16, `at most 16 associations were open at once (saw ${Math.max(...openCounts)})`);
  });
});

describe('DIMSE sender killed mid-instance', () => {
  let h: DimseHarness;
  let proxy: Server;
  const sockets = new Set<Socket>();
  before(async () => {
    h = await startDimse();
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => proxy?.close(resolve));
    await h?.stop();
  });

  test('leaves no file and no row', async () => {
    const storescu = requireTool('storescu', 'dcmtk');
    const path = join(h.dir, 'big.dcm');
    await writeFile(path, makeMultiFrame({ sopInstanceUid: newUid(), frames: 40, rows: 512, columns: 512 }));
    // A proxy that forwards the first 2 MB from the sender and drops the rest, so the kill
    // lands while the instance is certainly half received.
    let forwarded = 0;
    const proxyPort = await freePort();
    proxy = createServer((client) => {
      sockets.add(client);
      const upstream = createConnection({ host: '127.0.0.1', port: h.port });
      sockets.add(upstream);
      upstream.pipe(client);
      client.on('data', (chunk: Buffer) => {
        if (forwarded >= 2 * 1024 * 1024) return; // held back (dropped), so the instance never completes
        forwarded += chunk.length;
        upstream.write(chunk);
      });
      client.on('close', () => upstream.destroy());
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(proxyPort, '127.0.0.1', resolve));
    const sender = spawn(storescu, ['-aec', 'EDGE', '127.0.0.1', String(proxyPort), path], { stdio: 'ignore' });
    try {
      await waitFor('a partial temp file', async () => (await h.archiveFiles()).some((f) => f.startsWith('.incoming/')) && forwarded >= 2 * 1024 * 1024);
    } finally {
      sender.kill('SIGKILL');
    }
    await waitFor('the temp file to go', async () => (await h.archiveFiles()).length === 0);
    assert.equal(countInstances(h), 0);
    // The temp file's removal and the log line are not ordered: wait for the line rather than expect it already.
    await waitFor('the failed ingest to be logged', () => h.logs.some((l) => l.event === 'ingest-failed'));
  });
});

describe('DICOM TLS', () => {
  let h: DimseHarness;
  let certFile: string;
  let keyFile: string;
  before(async () => {
    const openssl = requireTool('openssl', 'openssl');
    const dir = join((await import('node:os')).tmpdir(), `dicom-edge-tls-${newUid()}`);
    await (await import('node:fs/promises')).mkdir(dir, { recursive: true });
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    await runOk(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost'],
      { timeoutMs: 30_000 });
    const tlsPort = await freePort();
    h = await startDimse({}, { tls: { enabled: true, port: tlsPort, certFile, keyFile } });
  });
  after(async () => h?.stop());

  test('storescu +tls stores an instance over DICOM TLS', async () => {
    const sopInstanceUid = newUid();
    const path = join(h.dir, 'tls.dcm');
    await writeFile(path, makeInstance({ sopInstanceUid }));
    const tlsPort = h.settings.dimse.tls.port;
    await runOk(requireTool('storescu', 'dcmtk'),
      ['+tls', keyFile, certFile, '+cf', certFile, '-aec', 'EDGE', '127.0.0.1', String(tlsPort), path], { timeoutMs: 30_000 });
    assert.equal((indexDb(h.archive).prepare('SELECT COUNT(*) AS n FROM instances WHERE sop_instance_uid = ?').get(sopInstanceUid) as { n: number }).n, 1);
  });

  test('a plain connection to the TLS port stores nothing', async () => {
    const result = await run(requireTool('echoscu', 'dcmtk'), ['-aec', 'EDGE', '-to', '5', '-ta', '5', '127.0.0.1', String(h.settings.dimse.tls.port)],
      { timeoutMs: 30_000 });
    assert.notEqual(result.code, 0);
  });
});
