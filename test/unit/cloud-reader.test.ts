// The archive reader's answers to what an upstream can say: statuses and problem bodies, token refresh,
// paging, multipart edge cases, cut connections, time limits and malformed change feeds. The upstream here
// is a scripted loopback server; the real peers are in test/integration/cloud-archive.test.ts.
import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ArchiveReader, ArchiveReadError, decodeCursor, encodeCursor, FEED_START } from '../../main/core/cloud/archive-reader.js';
import type { AuthProvider } from '../../main/core/forward/auth.js';
import { SignInRequiredError, TokenError } from '../../main/core/forward/auth.js';
import { listenLoopback, sendEmpty, sendJson, type LoopbackServer } from '../doubles/http-server.js';
import { watchClientSockets } from '../support/net.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => void | Promise<void>;

const TOKEN_1 = 'token-one-secret';
const TOKEN_2 = 'token-two-secret';

/** Bearer tokens in turn: the first, then the refreshed one. */
function tokens(): AuthProvider & { refreshes: number } {
  const provider = {
    refreshes: 0,
    async authorization(refresh = false) {
      if (refresh) provider.refreshes++;
      return `Bearer ${provider.refreshes > 0 ? TOKEN_2 : TOKEN_1}`;
    },
  };
  return provider;
}

async function expectFailure(promise: Promise<unknown>, kind: string, pattern: RegExp): Promise<ArchiveReadError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ArchiveReadError, `expected an ArchiveReadError, got ${String(caught)}`);
  assert.equal(caught.kind, kind, caught.message);
  assert.match(caught.message, pattern);
  assert.doesNotMatch(caught.message, /token-(one|two)-secret/);
  return caught;
}

async function drain(parts: AsyncIterable<{ body: NodeJS.ReadableStream }>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const part of parts) {
    const chunks: Buffer[] = [];
    for await (const chunk of part.body) chunks.push(chunk as Buffer);
    out.push(Buffer.concat(chunks));
  }
  return out;
}

describe('archive reader against a scripted upstream', () => {
  let server: LoopbackServer;
  let handler: Handler;
  let seen: Array<{ url: string; authorization?: string; accept?: string }>;
  let auth: ReturnType<typeof tokens>;
  let reader: ArchiveReader;

  before(async () => {
    server = await listenLoopback((req, res) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      seen.push({ url: `${url.pathname}${url.search}`, authorization: req.headers.authorization, accept: req.headers.accept });
      return handler(req, res, url);
    });
  });
  beforeEach(async () => {
    seen = [];
    auth = tokens();
    await reader?.close();
    reader = new ArchiveReader({ baseUrl: `${server.origin}/v2/`, auth, name: 'cloud' });
  });
  after(async () => {
    await reader.close();
    await server.close();
  });

  test('an expired token is refreshed once on 401; a second 401 is an auth failure naming the URL, never the token', async () => {
    handler = (req, res) => (req.headers.authorization === `Bearer ${TOKEN_2}` ? sendJson(res, 200, []) : sendJson(res, 401, { error: 'invalid_token' }));
    assert.deepEqual(await reader.search({ level: 'study' }), []);
    assert.equal(auth.refreshes, 1);
    assert.deepEqual(seen.map((s) => s.authorization), [`Bearer ${TOKEN_1}`, `Bearer ${TOKEN_2}`]);
    handler = (_req, res) => sendJson(res, 401, { errors: [{ code: 'Unauthorized', message: 'token expired' }] });
    const failure = await expectFailure(reader.search({ level: 'study' }), 'auth', /QIDO-RS search of studies at http:\/\/127\.0\.0\.1:\d+\/v2\/studies: HTTP 401 \(Unauthorized: token expired\)/);
    assert.equal(failure.status, 401);
  });

  test('statuses: 403 is auth with a hint, 404 of a study is not-found, 500 is retryable, 400 carries the problem', async () => {
    handler = (_req, res) => sendJson(res, 403, { title: 'Forbidden' });
    await expectFailure(reader.metadata({ studyUid: '1.2.3' }), 'auth', /HTTP 403 \(Forbidden\).*DICOM Data Reader/);
    handler = (_req, res) => sendJson(res, 404, { errors: [{ code: 'NotFound', message: 'The specified study cannot be found.' }] });
    await expectFailure(reader.metadata({ studyUid: '1.2.3' }), 'not-found', /studies\/1\.2\.3\/metadata: HTTP 404 \(NotFound: The specified study cannot be found\.\)/);
    handler = (_req, res) => sendJson(res, 503, { Message: 'Service unavailable', Details: 'maintenance' });
    const unavailable = await expectFailure(reader.search({ level: 'series', studyUid: '1.2.3' }), 'other', /HTTP 503 \(Service unavailable; maintenance\)/);
    assert.equal(unavailable.retryable, true);
    handler = (_req, res) => {
      res.writeHead(400, { 'content-type': 'text/html' });
      res.end('<html><body><h1>Bad   Request</h1> bad limit</body></html>');
    };
    const bad = await expectFailure(reader.search({ level: 'study', limit: 5000 }), 'other', /HTTP 400 \(Bad Request bad limit\)/);
    assert.equal(bad.retryable, false);
  });

  test('credentials that fail before any request: sign-in needed and a refused secret are auth, an unreachable token endpoint is offline', async () => {
    const failing = (error: Error) => new ArchiveReader({ baseUrl: server.origin, auth: { authorization: async () => { throw error; } } });
    for (const [error, kind] of [
      [new SignInRequiredError('sign in with a device code'), 'auth'],
      [new TokenError('could not get a token: invalid_client: AADSTS7000215'), 'auth'],
      [new TokenError('could not get a token: network_error'), 'offline'],
    ] as const) {
      const r = failing(error);
      await expectFailure(r.search({ level: 'study' }), kind, new RegExp(error.message.split(':')[0]!));
      await r.close();
    }
    assert.equal(seen.length, 0);
  });

  test('QIDO: query keys, includefield and fuzzy matching are sent; 204 is no match; pages are followed up to the limit', async () => {
    handler = (_req, res) => sendEmpty(res, 204);
    assert.deepEqual(await reader.search({ level: 'study', match: { PatientID: 'P1', StudyDate: '20240101-', StudyInstanceUID: ['1.2', '1.3'] }, includeFields: ['00081030'], fuzzy: true }), []);
    const query = new URL(seen[0]!.url, server.origin).searchParams;
    assert.equal(query.get('PatientID'), 'P1');
    assert.equal(query.get('StudyDate'), '20240101-');
    assert.equal(query.get('StudyInstanceUID'), '1.2,1.3');
    assert.equal(query.get('includefield'), '00081030');
    assert.equal(query.get('fuzzymatching'), 'true');
    assert.equal(seen[0]!.accept, 'application/dicom+json');

    const all = Array.from({ length: 7 }, (_, n) => ({ '0020000D': { vr: 'UI', Value: [`1.2.${n}`] } }));
    handler = (_req, res, url) => {
      const limit = Number(url.searchParams.get('limit'));
      const offset = Number(url.searchParams.get('offset') ?? 0);
      const page = all.slice(offset, offset + limit);
      return page.length ? sendJson(res, 200, page, {}, 'application/dicom+json') : sendEmpty(res, 204);
    };
    seen = [];
    const paged = await reader.search({ level: 'study', pageSize: 3 });
    assert.equal(paged.length, 7);
    assert.deepEqual(seen.map((s) => new URL(s.url, server.origin).search), ['?limit=3', '?limit=3&offset=3', '?limit=3&offset=6']);
    seen = [];
    assert.equal((await reader.search({ level: 'study', pageSize: 3, limit: 4, offset: 1 })).length, 4);
    assert.deepEqual(seen.map((s) => new URL(s.url, server.origin).search), ['?limit=3&offset=1', '?limit=1&offset=4']);
    assert.deepEqual(seen.map((s) => new URL(s.url, server.origin).pathname), ['/v2/studies', '/v2/studies']);
    await assert.rejects(reader.search({ level: 'study', studyUid: '1.2' }), RangeError);
  });

  test('QIDO: a scoped 404 is no match; an answer that is not DICOM JSON is an error', async () => {
    handler = (_req, res) => sendJson(res, 404, { errors: [] });
    assert.deepEqual(await reader.search({ level: 'instance', studyUid: '1.2', seriesUid: '1.2.3' }), []);
    assert.equal(seen.at(-1)!.url, '/v2/studies/1.2/series/1.2.3/instances');
    await expectFailure(reader.search({ level: 'study' }), 'not-found', /HTTP 404/);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end('{"not": "an array"}');
    };
    await expectFailure(reader.search({ level: 'study' }), 'other', /not an array of DICOM JSON datasets/);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/dicom+json' });
      res.end('[{"0020000D": ');
    };
    await expectFailure(reader.search({ level: 'study' }), 'other', /not JSON/);
  });

  test('WADO-RS: asks for the original bytes; parts stream with their transfer syntax; a single-part answer is one part', async () => {
    const a = Buffer.alloc(100_000, 1);
    const b = Buffer.from('second instance');
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary="b0und"' });
      res.write('--b0und\r\nContent-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n');
      res.write(a.subarray(0, 30_000));
      res.write(a.subarray(30_000));
      res.end(Buffer.concat([Buffer.from('\r\n--b0und\r\nContent-Type: application/dicom\r\n\r\n'), b, Buffer.from('\r\n--b0und--\r\n')]));
    };
    const parts: Array<{ contentType: string; transferSyntax?: string; bytes: Buffer }> = [];
    for await (const part of reader.retrieve({ studyUid: '1.2.3' })) {
      const chunks: Buffer[] = [];
      for await (const chunk of part.body) chunks.push(chunk as Buffer);
      parts.push({ contentType: part.contentType, transferSyntax: part.transferSyntax, bytes: Buffer.concat(chunks) });
    }
    assert.equal(seen[0]!.accept, 'multipart/related; type="application/dicom"; transfer-syntax=*');
    assert.equal(seen[0]!.url, '/v2/studies/1.2.3');
    assert.deepEqual(parts.map((p) => p.transferSyntax), ['1.2.840.10008.1.2.1', undefined]);
    assert.ok(parts[0]!.bytes.equals(a) && parts[1]!.bytes.equals(b));

    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/dicom; transfer-syntax=1.2.840.10008.1.2' });
      res.end(b);
    };
    const single = await drain(reader.retrieve({ studyUid: '1.2', seriesUid: '1.2.3', sopInstanceUid: '1.2.3.4' }));
    assert.equal(seen.at(-1)!.url, '/v2/studies/1.2/series/1.2.3/instances/1.2.3.4');
    assert.deepEqual(single, [b]);
  });

  test('WADO-RS: a part the consumer skips is drained; leaving early closes the answer', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' });
      res.end('--x\r\nContent-Type: application/dicom\r\n\r\nAAAA\r\n--x\r\nContent-Type: application/dicom\r\n\r\nBBBB\r\n--x--\r\n');
    };
    const seenParts: string[] = [];
    for await (const part of reader.retrieve({ studyUid: '1.2' })) {
      if (seenParts.length === 0) {
        seenParts.push('skipped');
        continue; // never read
      }
      const chunks: Buffer[] = [];
      for await (const chunk of part.body) chunks.push(chunk as Buffer);
      seenParts.push(Buffer.concat(chunks).toString());
    }
    assert.deepEqual(seenParts, ['skipped', 'BBBB']);
    let closed!: () => void;
    const answerClosed = new Promise<void>((resolve) => (closed = resolve));
    handler = (_req, res) => {
      res.on('close', () => closed());
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' });
      res.write('--x\r\nContent-Type: application/dicom\r\n\r\nAAAA'); // and never ends
    };
    for await (const part of reader.retrieve({ studyUid: '1.2' })) {
      part.body.destroy();
      break;
    }
    await answerClosed;
  });

  test('WADO-RS: 404 is not-found; a connection cut mid-part is offline; a malformed body is other', async () => {
    handler = (_req, res) => sendJson(res, 404, { errors: [{ code: 'NotFound', message: 'The specified study cannot be found.' }] });
    await expectFailure(drain(reader.retrieve({ studyUid: '1.2' })), 'not-found', /WADO-RS retrieve of study 1\.2 at .*\/v2\/studies\/1\.2: HTTP 404/);
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' });
      res.write('--x\r\nContent-Type: application/dicom\r\n\r\n');
      res.write(Buffer.alloc(50_000, 7), () => req.socket.destroy());
    };
    await expectFailure(drain(reader.retrieve({ studyUid: '1.2' })), 'offline', /WADO-RS retrieve of study 1\.2 at .*(cut mid-way|unreachable)/);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' });
      res.end('--x\r\nContent-Type: application/dicom\r\n\r\nno closing boundary');
    };
    await expectFailure(drain(reader.retrieve({ studyUid: '1.2' })), 'other', /malformed multipart answer/);
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('[]');
    };
    await expectFailure(drain(reader.retrieve({ studyUid: '1.2' })), 'other', /expected multipart\/related with a boundary, got "application\/json"/);
  });

  test('WADO-RS: a part that arrived whole before a cut comes whole, though the cut came while the consumer was busy', async () => {
    // The end of the second part and the start of a third arrive, then the archive closes, all while the consumer
    // is busy with the first part (writing it to disk, say): the second part arrived before the cut, and counts.
    const clients = watchClientSockets();
    let restThenCut!: () => Promise<void>;
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' });
      res.write('--x\r\nContent-Type: application/dicom\r\n\r\nAAAA\r\n--x\r\nContent-Type: application/dicom\r\n\r\nBB');
      restThenCut = () => {
        const closed = clients.closed(req.socket);
        res.write('BB\r\n--x\r\nContent-Type: application/dicom\r\n\r\nCC', () => req.socket.destroy());
        return closed;
      };
    };
    try {
      const parts = reader.retrieve({ studyUid: '1.2' });
      const bytes = async (body: NodeJS.ReadableStream) => {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString();
      };
      const first = await parts.next();
      assert.ok(!first.done);
      assert.equal(await bytes(first.value.body), 'AAAA');
      await restThenCut(); // the client has closed the answer before the consumer reads on
      const second = await parts.next();
      assert.ok(!second.done, 'the second part came');
      assert.equal(await bytes(second.value.body), 'BBBB', 'the second part, whole');
      await expectFailure(drain(parts), 'offline', /WADO-RS retrieve of study 1\.2 at .*(cut mid-way|unreachable)/);
    } finally {
      clients.stop();
    }
  });

  test('a time limit turns an upstream that never answers into offline; the caller\'s abort stays an abort', async () => {
    handler = () => undefined; // never answers
    const started = process.hrtime.bigint();
    await expectFailure(reader.search({ level: 'study', timeoutMs: 200 }), 'offline', /no answer within 200 ms/);
    assert.ok(Number(process.hrtime.bigint() - started) / 1e6 < 10_000, 'gave up long before the idle timeout');
    await expectFailure(drain(reader.retrieve({ studyUid: '1.2' }, { timeoutMs: 200 })), 'offline', /no answer within 200 ms/);
    const controller = new AbortController();
    const search = reader.search({ level: 'study', signal: controller.signal, timeoutMs: 60_000 });
    controller.abort(new Error('user went away'));
    await assert.rejects(search, /user went away/);
  });

  test('change feed: entries parsed, latest and 204, "no change feed" on 404, malformed entries named', async () => {
    const entry = {
      Sequence: 7, StudyInstanceUid: '1.2', SeriesInstanceUid: '1.2.3', SopInstanceUid: '1.2.3.4', Action: 'Create',
      Timestamp: '2024-05-01T10:00:00.1234567Z', State: 'current', Metadata: { '00100020': { vr: 'LO', Value: ['P'] } },
    };
    handler = (_req, res, url) => (url.pathname.endsWith('/latest') ? sendEmpty(res, 204) : sendJson(res, 200, [entry]));
    const page = await reader.changeFeed({ startTime: '2024-05-01T00:00:00Z', offset: 3, limit: 50, includeMetadata: false });
    assert.deepEqual(new URL(seen[0]!.url, server.origin).searchParams.toString(), 'startTime=2024-05-01T00%3A00%3A00Z&offset=3&limit=50&includeMetadata=false');
    assert.ok(page.supported);
    assert.deepEqual(page.value, [{
      sequence: 7, studyInstanceUid: '1.2', seriesInstanceUid: '1.2.3', sopInstanceUid: '1.2.3.4', action: 'create',
      timestamp: '2024-05-01T10:00:00.1234567Z', state: 'current', metadata: entry.Metadata,
    }]);
    assert.deepEqual(await reader.latestChange(), { supported: true, value: undefined });

    handler = (_req, res) => sendJson(res, 404, { Message: 'Unknown resource' });
    const none = await reader.changeFeed();
    assert.equal(none.supported, false);
    assert.ok(!none.supported && none.status === 404 && /changefeed: HTTP 404/.test(none.reason));
    assert.equal((await reader.latestChange()).supported, false);

    handler = (_req, res) => sendJson(res, 500, { errors: [{ code: 'InternalServerError', message: 'boom' }] });
    await expectFailure(reader.changeFeed(), 'other', /change feed at .*changefeed: HTTP 500/);
    for (const [bad, pattern] of [
      [{ ...entry, Sequence: '7' }, /entry 0 has no integer Sequence/],
      [{ ...entry, Action: 'rename' }, /entry 0 has the unknown Action "rename"/],
      [{ ...entry, Timestamp: 'yesterday' }, /Timestamp "yesterday", not a date-time/],
      [{ ...entry, SopInstanceUid: '' }, /entry 0 has no SopInstanceUid/],
    ] as const) {
      handler = (_req, res) => sendJson(res, 200, [bad]);
      await expectFailure(reader.changeFeed(), 'other', pattern);
    }
  });

  test('change feed cursor: pages within one Timestamp and across, repeats left out, caught up on a short page', async () => {
    const t = (n: number) => `2024-05-01T10:00:0${n}.0000000Z`;
    const feed = [1, 2, 3, 4, 5].map((sequence) => ({
      Sequence: sequence, StudyInstanceUid: '1.2', SeriesInstanceUid: '1.2.3', SopInstanceUid: `1.2.3.${sequence}`, Action: 'create',
      Timestamp: sequence <= 3 ? t(1) : t(2), State: 'current',
    }));
    handler = (_req, res, url) => {
      const start = url.searchParams.get('startTime');
      const window = feed.filter((e) => start === null || e.Timestamp >= start);
      const offset = Number(url.searchParams.get('offset') ?? 0);
      sendJson(res, 200, window.slice(offset, offset + Number(url.searchParams.get('limit'))));
    };
    const first = await reader.changesSince(FEED_START, { limit: 2 });
    assert.ok(first.supported);
    assert.deepEqual(first.value.entries.map((e) => e.sequence), [1, 2]);
    assert.deepEqual(first.value.cursor, { startTime: t(1), skip: 2, lastSequence: 2 });
    assert.equal(first.value.caughtUp, false);
    const second = await reader.changesSince(decodeCursor(encodeCursor(first.value.cursor)), { limit: 2 });
    assert.ok(second.supported);
    assert.deepEqual(second.value.entries.map((e) => e.sequence), [3, 4]);
    assert.deepEqual(second.value.cursor, { startTime: t(2), skip: 1, lastSequence: 4 });
    const third = await reader.changesSince(second.value.cursor, { limit: 2 });
    assert.ok(third.supported);
    assert.deepEqual(third.value.entries.map((e) => e.sequence), [5]);
    assert.equal(third.value.caughtUp, true);
    assert.equal(new URL(seen.at(-1)!.url, server.origin).searchParams.get('offset'), '1');
    assert.throws(() => decodeCursor('{"offset":3}'), /not a version-2 cursor/);
    assert.throws(() => decodeCursor('garbage'), /not JSON/);
  });
});

describe('archive reader against a dead upstream', () => {
  test('a closed port is offline at once, with the URL; the time limit is never needed', async () => {
    const server = await listenLoopback((_req, res) => sendEmpty(res, 204));
    const origin = server.origin;
    await server.close();
    const reader = new ArchiveReader({ baseUrl: `${origin}/dicom-web`, auth: { authorization: async () => undefined } });
    try {
      const failure = await expectFailure(reader.search({ level: 'study', timeoutMs: 30_000 }), 'offline', /unreachable \(ECONNREFUSED/);
      assert.ok(failure.message.includes(`${origin}/dicom-web/studies`));
      assert.equal(failure.retryable, true);
      await expectFailure(drain(reader.retrieve({ studyUid: '1.2' })), 'offline', /ECONNREFUSED/);
      await expectFailure(reader.changeFeed(), 'offline', /ECONNREFUSED/);
    } finally {
      await reader.close();
    }
  });
});
