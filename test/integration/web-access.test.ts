import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Appliance } from '../../main/core/appliance.js';
import { freePort } from '../support/net.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

describe('HTTP access control', () => {
  let w: WebAppliance;
  before(async () => {
    w = await startWebAppliance();
  });
  after(async () => {
    await w.stop();
  });

  test('no token, or a wrong one, gives 401 on every kind of route', async () => {
    for (const path of ['/api/info', '/dicom-web/studies', '/api/events', '/', '/dicom-web/studies/1.2.3/metadata']) {
      const none = await fetch(`${w.baseUrl}${path}`);
      assert.equal(none.status, 401, `no token: ${path}`);
      assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
      await none.arrayBuffer();
      const wrong = await fetch(`${w.baseUrl}${path}`, { headers: { authorization: 'Bearer wrong-token' } });
      assert.equal(wrong.status, 401, `wrong token: ${path}`);
      await wrong.arrayBuffer();
    }
    const post = await fetch(`${w.dicomWebUrl}/studies`, { method: 'POST', body: 'x', headers: { 'content-type': 'multipart/related; boundary=x' } });
    assert.equal(post.status, 401);
    assert.equal((await fetch(`${w.baseUrl}/?token=wrong`, { redirect: 'manual' })).status, 401);
  });

  test('a token URL sets an HttpOnly SameSite=Strict cookie that then opens every route', async () => {
    const response = await fetch(`${w.baseUrl}/?token=${encodeURIComponent(w.token)}`, { redirect: 'manual' });
    assert.equal(response.status, 303);
    assert.equal(response.headers.get('location'), '/');
    const cookie = response.headers.get('set-cookie') ?? '';
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    const page = await fetch(`${w.baseUrl}/`, { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.match(await page.text(), /DICOM Edge/);
    const api = await fetch(`${w.baseUrl}/api/health`, { headers: { cookie: cookie.split(';')[0]! } });
    assert.equal(api.status, 200);
  });

  test('a state-changing request with the session cookie from another origin (another port of this host) is refused with 403', async () => {
    const login = await fetch(`${w.baseUrl}/?token=${encodeURIComponent(w.token)}`, { redirect: 'manual' });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
    const foreign = `http://127.0.0.1:${Number(new URL(w.baseUrl).port) === 65535 ? 65534 : Number(new URL(w.baseUrl).port) + 1}`;
    const paths = ['/api/destinations/cloud/pause', '/api/destinations/cloud/test', '/api/destinations/cloud/sign-in', '/api/failures/1/retry', '/api/studies/1.2.3/cancel'];
    for (const path of paths) {
      const refused = await fetch(`${w.baseUrl}${path}`, { method: 'POST', headers: { cookie, origin: foreign } });
      assert.equal(refused.status, 403, path);
      assert.match(((await refused.json()) as { error: string }).error, /cross-site request refused: origin http:\/\/127\.0\.0\.1:\d+ is not this appliance's/);
      const sameSite = await fetch(`${w.baseUrl}${path}`, { method: 'POST', headers: { cookie, 'sec-fetch-site': 'same-site' } });
      assert.equal(sameSite.status, 403, `${path} (Sec-Fetch-Site)`);
      await sameSite.arrayBuffer();
    }
    const put = await fetch(`${w.baseUrl}/api/settings`, { method: 'PUT', headers: { cookie, origin: foreign, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(put.status, 403);
    const del = await fetch(`${w.dicomWebUrl}/studies/1.2.3`, { method: 'DELETE', headers: { cookie, origin: foreign } });
    assert.equal(del.status, 403);
    // Our own page, a non-browser client with the cookie, and a bearer caller go on to the route (404: nothing there).
    const own = await fetch(`${w.baseUrl}/api/destinations/cloud/pause`, { method: 'POST', headers: { cookie, origin: w.baseUrl, 'sec-fetch-site': 'same-origin' } });
    assert.equal(own.status, 404);
    const plain = await fetch(`${w.baseUrl}/api/destinations/cloud/pause`, { method: 'POST', headers: { cookie } });
    assert.equal(plain.status, 404);
    const bearer = await fetch(`${w.baseUrl}/api/destinations/cloud/pause`, { method: 'POST', headers: { authorization: `Bearer ${w.token}`, origin: foreign } });
    assert.equal(bearer.status, 404);
    const read = await fetch(`${w.baseUrl}/api/health`, { headers: { cookie, origin: foreign } });
    assert.equal(read.status, 200);
  });

  test('a request for a host name that is not ours (DNS rebinding) is refused with 421; loopback names work', async () => {
    const port = Number(new URL(w.baseUrl).port);
    const rebound = await requestWithHost(port, `rebind.attacker.example:${port}`, w.token);
    assert.equal(rebound.status, 421);
    assert.match(rebound.body, /host \\"rebind\.attacker\.example\\" is not one this appliance answers to; add it to http\.allowedHosts/);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) assert.equal((await requestWithHost(port, host, w.token)).status, 200, host);
  });

  test('CORS is off by default', async () => {
    const response = await w.api('/api/health', { headers: { origin: 'http://evil.example' } });
    assert.equal(response.headers.get('access-control-allow-origin'), null);
  });
});

describe('http.allowedHosts', () => {
  let w: WebAppliance;
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-hosts-'));
    await writeFile(join(dataDir, 'settings.json'), JSON.stringify({ http: { allowedHosts: ['edge.clinic.example'] } }));
    w = await startWebAppliance({ dataDir });
  });
  after(async () => {
    await w?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  test('a configured host name is answered to, others still are not', async () => {
    const port = Number(new URL(w.baseUrl).port);
    assert.equal((await requestWithHost(port, `edge.clinic.example:${port}`, w.token)).status, 200);
    assert.equal((await requestWithHost(port, `other.clinic.example:${port}`, w.token)).status, 421);
  });
});

describe('non-loopback bind', () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'dicom-edge-bind-'));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test('without a configured credential the appliance refuses to start, naming what to configure', async () => {
    const create = Appliance.create({
      dataDir,
      overrides: { httpHost: '0.0.0.0', httpPort: await freePort(), dimsePort: await freePort() },
      announce: () => undefined,
    });
    await assert.rejects(create, /field "http\.host" has value "0\.0\.0\.0": refusing to listen on non-loopback address 0\.0\.0\.0.*http\.apiToken/s);
  });
});

/** GET /api/health with a Host header of our choosing (fetch does not let a caller set Host). */
function requestWithHost(port: number, host: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/api/health', headers: { host, authorization: `Bearer ${token}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
