// PUT /api/settings and the destination test route against a running appliance: what a settings edit
// may do with stored secrets, what it applies, and what it writes.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { startProblems } from '../../main/core/start-checks.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { listenLoopback, readBody, sendJson, type LoopbackServer } from '../doubles/http-server.js';
import { waitFor } from '../support/forward-harness.js';
import { makeInstance } from '../support/instance.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

type Json = Record<string, any>;

/** An upstream that answers every request with an empty QIDO result and remembers what it received. */
async function startRecorder(): Promise<LoopbackServer & { received: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> }> {
  const received: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
  const server = await listenLoopback(async (req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: (await readBody(req)).toString('latin1') });
    sendJson(res, 200, [], {}, 'application/dicom+json');
  });
  return Object.assign(server, { received });
}

const json = { 'content-type': 'application/json' };

async function putSettings(w: WebAppliance, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Json }> {
  const response = await w.api('/api/settings', { method: 'PUT', headers: { ...json, ...headers }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Json };
}

async function getSettings(w: WebAppliance): Promise<Json> {
  return (await (await w.api('/api/settings')).json()) as Json;
}

describe('a stored destination secret stays bound to where it was entered for', () => {
  const ORIGINAL_SECRET = 'original-secret-for-the-real-upstream';
  const NEW_SECRET = 'secret-typed-for-the-new-host';
  let w: WebAppliance;
  let upstream: AzureDicomDouble;
  let newHost: Awaited<ReturnType<typeof startRecorder>>;

  before(async () => {
    upstream = await AzureDicomDouble.start();
    newHost = await startRecorder();
    w = await startWebAppliance();
    const settings = await getSettings(w);
    settings.destinations = [{ name: 'cloud', baseUrl: upstream.baseUrl, auth: { kind: 'bearer', token: ORIGINAL_SECRET }, retryBaseMs: 50, retryCapMs: 200 }];
    const put = await putSettings(w, settings);
    assert.equal(put.status, 200, JSON.stringify(put.body));
  });
  after(async () => {
    await w?.stop();
    await upstream?.stop();
    await newHost?.close();
  });

  const leaked = () => newHost.received.filter((r) => JSON.stringify(r).includes(ORIGINAL_SECRET));

  test('PUT with a changed baseUrl and the masked secret is refused with 400 naming the secret field, and changes nothing', async () => {
    const settings = await getSettings(w);
    assert.equal(settings.destinations[0].auth.token, '********');
    settings.destinations[0].baseUrl = `${newHost.origin}/v2`;
    const put = await putSettings(w, settings);
    assert.equal(put.status, 400, JSON.stringify(put.body));
    assert.ok(
      put.body.problems.includes('field "destinations.0.auth.token" has value "********": re-enter the secret, because baseUrl changed'),
      JSON.stringify(put.body),
    );
    assert.equal((await getSettings(w)).destinations[0].baseUrl, upstream.baseUrl);
  });

  test('forwarding keeps going to the host the secret was entered for; nothing reaches the new host', async () => {
    const sopInstanceUid = '1.2.826.0.1.3680043.8.498.4242.1';
    await w.appliance.archive.ingest(Readable.from([makeInstance({ sopInstanceUid })]), { callingAe: 'MODALITY', peer: 'test' });
    await waitFor(() => upstream.storedInstance(sopInstanceUid), () => JSON.stringify(upstream.requests.slice(-3)));
    assert.deepEqual(newHost.received, []);
  });

  test('/test of an edited, unsaved destination with a changed baseUrl and the mask is refused; the saved one is tested where it was', async () => {
    const draft = { ...(await getSettings(w)).destinations[0], baseUrl: `${newHost.origin}/v2` };
    const response = await w.api('/api/destinations/cloud/test', { method: 'POST', headers: json, body: JSON.stringify({ destination: draft }) });
    assert.equal(response.status, 400);
    const body = (await response.json()) as Json;
    assert.deepEqual(body.problems, ['field "destination.auth.token" has value "********": re-enter the secret, because baseUrl changed']);
    const saved = await w.api('/api/destinations/cloud/test', { method: 'POST', headers: json, body: '{}' });
    assert.equal(saved.status, 200);
    assert.equal(((await saved.json()) as Json).ok, true);
    assert.deepEqual(newHost.received, []);
  });

  test('a re-entered secret may go to the new host, on /test and on forwarding, and the old one never does', async () => {
    const draft = { ...(await getSettings(w)).destinations[0], baseUrl: `${newHost.origin}/v2` };
    draft.auth = { kind: 'bearer', token: NEW_SECRET };
    const tested = await w.api('/api/destinations/cloud/test', { method: 'POST', headers: json, body: JSON.stringify({ destination: draft }) });
    assert.equal(tested.status, 200, await tested.clone().text());
    assert.equal(((await tested.json()) as Json).ok, true);
    assert.deepEqual(newHost.received.map((r) => r.headers.authorization), [`Bearer ${NEW_SECRET}`]);

    const settings = await getSettings(w);
    settings.destinations[0] = draft;
    const put = await putSettings(w, settings);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await w.appliance.archive.ingest(Readable.from([makeInstance({ sopInstanceUid: '1.2.826.0.1.3680043.8.498.4242.2' })]), { callingAe: 'MODALITY', peer: 'test' });
    await waitFor(() => newHost.received.some((r) => r.method === 'POST'), () => JSON.stringify(newHost.received.map((r) => [r.method, r.url])));
    assert.ok(newHost.received.every((r) => r.headers.authorization === `Bearer ${NEW_SECRET}`));
    assert.deepEqual(leaked(), []);
  });
});

describe('a settings write keeps flags out of the file and says what is in force and what waits for a restart', () => {
  let w: WebAppliance;
  const fileSettings = async (): Promise<Json> => JSON.parse(await readFile(join(w.dataDir, 'settings.json'), 'utf8')) as Json;

  before(async () => {
    w = await startWebAppliance({ overrides: { aeTitle: 'FLAGAE' } });
  });
  after(async () => {
    await w?.stop();
  });

  test('a plain GET→PUT round trip writes none of --aet, --api-token and the ports into settings.json', async () => {
    const before = await fileSettings();
    const shown = await getSettings(w);
    assert.equal(shown.aeTitle, 'FLAGAE', 'GET shows the settings in force, flags applied');
    const put = await putSettings(w, shown);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const after = await fileSettings();
    assert.equal(after.aeTitle, before.aeTitle);
    assert.equal(after.dimse.port, before.dimse.port);
    assert.equal(after.http.port, before.http.port);
    assert.equal(after.http.apiToken, before.http.apiToken);
    assert.ok(!JSON.stringify(after).includes(w.token), 'the --api-token value is not in the file');
    assert.deepEqual([put.body.applied, put.body.restartRequired, put.body.overriddenByFlag], [[], [], []]);
  });

  test('a live part is applied at once, a listener part is saved for the restart and not applied', async () => {
    const settings = await getSettings(w);
    settings.http.corsOrigins = ['https://pacs.example'];
    settings.log.level = 'debug';
    settings.peers = [{ aeTitle: 'WORKSTATION', host: '127.0.0.1', port: 104, description: '' }];
    settings.storage.minFreeBytes = 12345;
    const put = await putSettings(w, settings);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.applied, ['peers', 'storage.minFreeBytes']);
    assert.deepEqual(put.body.restartRequired, ['http.corsOrigins', 'log.level']);
    assert.deepEqual(put.body.settings.http.corsOrigins, ['https://pacs.example'], 'the answer shows the saved value');
    const info = (await (await w.api('/api/info')).json()) as Json;
    assert.equal(info.storage.minFreeBytes, 12345);
    assert.equal(w.appliance.settings.peers[0]!.aeTitle, 'WORKSTATION');
    assert.deepEqual(w.appliance.settings.http.corsOrigins, [], 'the running HTTP access settings are unchanged');
    assert.equal(w.appliance.settings.log.level, 'info');
    const preflight = await w.api('/api/health', { headers: { origin: 'https://pacs.example' } });
    assert.equal(preflight.headers.get('access-control-allow-origin'), null);
    assert.deepEqual((await fileSettings()).http.corsOrigins, ['https://pacs.example'], 'the file holds it for the next start');
    assert.deepEqual((await getSettings(w)).http.corsOrigins, ['https://pacs.example'], 'GET shows what was saved');
    // A change still waiting is reported by the next write too.
    const again = await putSettings(w, await getSettings(w));
    assert.deepEqual([again.body.applied, again.body.restartRequired], [[], ['http.corsOrigins', 'log.level']]);
  });

  test('changing a value a flag sets is written to the file and reported, and the flag keeps winning', async () => {
    const settings = await getSettings(w);
    settings.aeTitle = 'FROMUI';
    const put = await putSettings(w, settings);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.overriddenByFlag, ['aeTitle']);
    assert.equal((await fileSettings()).aeTitle, 'FROMUI');
    assert.equal(w.appliance.settings.aeTitle, 'FLAGAE');
    assert.equal((await getSettings(w)).aeTitle, 'FLAGAE');
  });
});

describe('a settings write that would stop the next start is refused, as the start refuses it', () => {
  let w: WebAppliance;
  const fileText = () => readFile(join(w.dataDir, 'settings.json'), 'utf8');

  before(async () => {
    w = await startWebAppliance({ generatedToken: true });
  });
  after(async () => {
    await w?.stop();
  });

  const refused: Array<[string, (s: Json) => void, string]> = [
    ['a non-loopback HTTP host with no credential', (s) => (s.http.host = '0.0.0.0'),
      'field "http.host" has value "0.0.0.0": refusing to listen on non-loopback address 0.0.0.0: configure a credential first'],
    ['a basic-auth password hash the start cannot use', (s) => (s.http.basicAuth = { user: 'tech', passwordHash: 'scrypt$broken' }),
      'field "http.basicAuth.passwordHash" has value (hidden): http.basicAuth.passwordHash is not of the form scrypt$N$r$p$salt$hash'],
    ['DICOM TLS with a certificate file that cannot be read', (s) => Object.assign(s.dimse.tls, { enabled: true, certFile: '/nonexistent/cert.pem', keyFile: '/nonexistent/key.pem' }),
      'field "dimse.tls.certFile" has value "/nonexistent/cert.pem": cannot be read (ENOENT)'],
  ];
  for (const [label, change, problem] of refused) {
    test(`${label}: 400 naming the field, nothing written or applied`, async () => {
      const before = await fileText();
      const settings = await getSettings(w);
      change(settings);
      const put = await putSettings(w, settings);
      assert.equal(put.status, 400, JSON.stringify(put.body));
      assert.ok(put.body.problems.some((p: string) => p.startsWith(problem)), JSON.stringify(put.body.problems));
      assert.equal(await fileText(), before);
      assert.equal(w.appliance.settings.http.host, '127.0.0.1');
    });
  }

  test('the same host with a credential is accepted, and the start takes those settings', async () => {
    const settings = await getSettings(w);
    Object.assign(settings.http, { host: '0.0.0.0', apiToken: 'a-configured-token-for-the-lan' });
    const put = await putSettings(w, settings);
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body.restartRequired, ['http.apiToken', 'http.host']);
    assert.deepEqual(startProblems(w.appliance.live.configured), []);
  });
});

describe('concurrent settings writes', () => {
  let w: WebAppliance;
  const filePeers = async (): Promise<string[]> =>
    (JSON.parse(await readFile(join(w.dataDir, 'settings.json'), 'utf8')) as Json).peers.map((p: Json) => p.aeTitle);
  const withPeer = (settings: Json, aeTitle: string): Json => ({ ...settings, peers: [{ aeTitle, host: '127.0.0.1', port: 104, description: '' }] });

  before(async () => {
    w = await startWebAppliance();
  });
  after(async () => {
    await w?.stop();
  });

  test('GET carries the revision; of concurrent PUTs made from it with If-Match, exactly one is written and the rest get 409', async () => {
    const read = await w.api('/api/settings');
    const etag = read.headers.get('etag');
    assert.match(etag ?? '', /^"[A-Za-z0-9_-]+"$/);
    const settings = (await read.json()) as Json;
    const titles = ['WRITER1', 'WRITER2', 'WRITER3', 'WRITER4', 'WRITER5'];
    const answers = await Promise.all(titles.map((title) => putSettings(w, withPeer(settings, title), { 'if-match': etag! })));
    const statuses = answers.map((a) => a.status).sort();
    assert.deepEqual(statuses, [200, 409, 409, 409, 409], JSON.stringify(answers.map((a) => a.body)));
    const winner = titles[answers.findIndex((a) => a.status === 200)]!;
    assert.match(answers.find((a) => a.status === 409)!.body.error, /settings changed since revision/);
    assert.deepEqual(await filePeers(), [winner]);
    assert.deepEqual(w.appliance.settings.peers.map((p) => p.aeTitle), [winner]);
    const after = await w.api('/api/settings');
    assert.equal(after.headers.get('etag'), `"${answers.find((a) => a.status === 200)!.body.revision}"`);
    assert.notEqual(after.headers.get('etag'), etag);
    assert.deepEqual(((await after.json()) as Json).peers.map((p: Json) => p.aeTitle), [winner]);
  });

  test('concurrent PUTs without If-Match are written one after another; the file and the running settings end the same', async () => {
    const settings = await getSettings(w);
    const titles = Array.from({ length: 8 }, (_, i) => `PARALLEL${i}`);
    const answers = await Promise.all(titles.map((title) => putSettings(w, withPeer(settings, title))));
    assert.deepEqual(answers.map((a) => a.status), titles.map(() => 200));
    assert.equal(new Set(answers.map((a) => a.body.revision)).size, titles.length, 'each write made its own revision');
    const last = await filePeers();
    assert.deepEqual(w.appliance.settings.peers.map((p) => p.aeTitle), last);
    assert.deepEqual((await getSettings(w)).peers.map((p: Json) => p.aeTitle), last);
    const read = await w.api('/api/settings');
    assert.ok(answers.some((a) => `"${a.body.revision}"` === read.headers.get('etag')), 'the current revision is that of a write');
  });

  test('a stale If-Match changes nothing', async () => {
    const before = await readFile(join(w.dataDir, 'settings.json'), 'utf8');
    const put = await putSettings(w, withPeer(await getSettings(w), 'STALE'), { 'if-match': '"not-the-revision"' });
    assert.equal(put.status, 409);
    assert.equal(await readFile(join(w.dataDir, 'settings.json'), 'utf8'), before);
  });
});

describe('the data dir and everything in it are for this user only', () => {
  let w: WebAppliance;
  let dataDir: string;

  /** Every folder and file under the data dir whose mode is not 0700 / 0600. */
  async function tooOpen(): Promise<string[]> {
    const wrong: string[] = [];
    const visit = async (path: string): Promise<void> => {
      const info = await stat(path);
      const mode = info.mode & 0o777;
      if (info.isDirectory()) {
        if (mode !== 0o700) wrong.push(`${path} ${mode.toString(8)}`);
        for (const name of await readdir(path)) await visit(join(path, name));
      } else if (mode !== 0o600) {
        wrong.push(`${path} ${mode.toString(8)}`);
      }
    };
    await visit(dataDir);
    return wrong;
  }

  before(async () => {
    // As an older version left it: a world-readable data dir and settings file.
    dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-modes-'));
    await chmod(dataDir, 0o755);
    await writeFile(join(dataDir, 'settings.json'), '{}\n', { mode: 0o644 });
    await chmod(join(dataDir, 'settings.json'), 0o644);
    w = await startWebAppliance({ dataDir });
  });
  after(async () => {
    await w?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('after the start: the data dir is 0700, settings.json, the index and the logs 0600', async () => {
    assert.deepEqual(await tooOpen(), []);
    for (const name of ['settings.json', 'index.sqlite', 'logs']) assert.ok(existsSync(join(dataDir, name)), name);
  });

  test('after an instance is stored: its folders are 0700, its file and the index WAL 0600', async () => {
    const instance = makeInstance();
    await w.appliance.archive.ingest(Readable.from([instance]), { callingAe: 'MODALITY', peer: 'test' });
    assert.ok(existsSync(join(dataDir, 'index.sqlite-wal')));
    assert.deepEqual(await tooOpen(), []);
  });

  test('after a PUT: settings.json is 0600, and a new secret never reaches the disk in plain text', async () => {
    const secret = 'plain-secret-typed-in-the-form';
    const written: string[] = [];
    const file = w.appliance.settingsFile;
    const write = file.write.bind(file);
    file.write = async (next) => {
      written.push(JSON.stringify(next));
      return write(next);
    };
    try {
      const settings = await getSettings(w);
      settings.destinations = [{ name: 'cloud', baseUrl: 'https://dicom.example/v2', enabled: false, auth: { kind: 'bearer', token: secret } }];
      const put = await putSettings(w, settings);
      assert.equal(put.status, 200, JSON.stringify(put.body));
    } finally {
      file.write = write;
    }
    assert.equal(written.length, 1);
    assert.ok(!written[0]!.includes(secret), 'what was handed to the file holds the secret sealed');
    const text = await readFile(join(dataDir, 'settings.json'), 'utf8');
    assert.ok(!text.includes(secret));
    assert.match((JSON.parse(text) as Json).destinations[0].auth.token, /^enc:v1:/);
    assert.deepEqual(await tooOpen(), []);
  });
});
