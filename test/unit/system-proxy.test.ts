// The desktop's system proxy: Chromium's PAC-style answer read, added to the environment the Egress reads only
// when neither settings nor the environment name a proxy; and the window trusts exactly the server's own certificate.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseResolvedProxy, withSystemProxy } from '../../main/core/network/system-proxy.js';
import { Egress } from '../../main/core/network/egress.js';
import { isOwnCertificate, windowOrigin } from '../../main/electron/own-certificate.js';
import { ForwardService } from '../../main/core/forward/service.js';
import { makeTestCa, type TestCa } from '../support/test-ca.js';
import { startWebAppliance } from '../support/web-appliance.js';

const NETWORK = { proxy: { url: '', user: '', password: '', noProxy: '' }, caFile: '' };
const systemProxy = { https: { url: 'http://proxy.clinic.lan:3128' }, http: { url: 'http://proxy.clinic.lan:3128' } };

describe('the system proxy', () => {
  test("Chromium's answers: the first entry decides; DIRECT is none; SOCKS is refused with what to do", () => {
    assert.deepEqual(parseResolvedProxy('DIRECT'), {});
    assert.deepEqual(parseResolvedProxy(''), {});
    assert.deepEqual(parseResolvedProxy('PROXY proxy.clinic.lan:3128; DIRECT'), { url: 'http://proxy.clinic.lan:3128' });
    assert.deepEqual(parseResolvedProxy('HTTPS secure.clinic.lan:443'), { url: 'https://secure.clinic.lan:443' });
    assert.deepEqual(parseResolvedProxy('DIRECT; PROXY proxy.clinic.lan:3128'), {});
    assert.match(parseResolvedProxy('SOCKS5 socks.clinic.lan:1080; DIRECT').unsupported ?? '', /SOCKS5 socks\.clinic\.lan:1080.*Settings → Network/);
    assert.match(parseResolvedProxy('PROXY').unsupported ?? '', /names no host/);
  });

  test('used when nothing else names a proxy; loopback stays direct', () => {
    const egress = Egress.fromSettings(NETWORK, withSystemProxy({}, systemProxy));
    assert.equal(egress.proxyFor('https://contoso.dicom.azurehealthcareapis.com/v2')?.origin, 'http://proxy.clinic.lan:3128');
    assert.equal(egress.proxyFor('http://orthanc.example.org:8042/dicom-web')?.origin, 'http://proxy.clinic.lan:3128');
    assert.equal(egress.proxyFor('http://127.0.0.1:8042/dicom-web'), undefined);
    assert.equal(egress.proxyFor('http://[::1]:8042/dicom-web'), undefined);
  });

  test('the environment wins over the system proxy, and network.proxy over both', () => {
    const fromEnv = Egress.fromSettings(NETWORK, withSystemProxy({ https_proxy: 'http://env-proxy:8080' }, systemProxy));
    assert.equal(fromEnv.proxyFor('https://contoso.dicom.azurehealthcareapis.com/v2')?.origin, 'http://env-proxy:8080');
    const fromSettings = Egress.fromSettings({ ...NETWORK, proxy: { ...NETWORK.proxy, url: 'http://settings-proxy:3128' } }, withSystemProxy({}, systemProxy));
    assert.equal(fromSettings.proxyFor('https://contoso.dicom.azurehealthcareapis.com/v2')?.origin, 'http://settings-proxy:3128');
  });

  test("the appliance's forwarding and archive reads take the proxy environment the shell gives it", async () => {
    const w = await startWebAppliance({ forward: { proxyEnvironment: withSystemProxy({}, systemProxy) } });
    try {
      const forward = w.appliance.services.find((service): service is ForwardService => service instanceof ForwardService);
      assert.equal(forward?.egress().proxyOrigin, 'http://proxy.clinic.lan:3128');
    } finally {
      await w.stop();
    }
  });

  test('a direct or unusable system proxy adds nothing', () => {
    const env = { PATH: '/usr/bin' };
    assert.equal(withSystemProxy(env, { https: {}, http: {} }), env);
    assert.equal(withSystemProxy(env, { https: { unsupported: 'SOCKS5' }, http: {} }), env);
  });
});

describe("the window and the server's own certificate", () => {
  let dir = '';
  let ca: TestCa;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'own-cert-'));
    ca = await makeTestCa(dir);
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('the window origin is https when the server speaks it, by a loopback address when bound to all', () => {
    assert.equal(windowOrigin('0.0.0.0', 8080, true), 'https://127.0.0.1:8080');
    assert.equal(windowOrigin('127.0.0.1', 8080, false), 'http://127.0.0.1:8080');
    assert.equal(windowOrigin('fd00::5', 8080, true), 'https://[fd00::5]:8080');
  });

  test('trusted: that certificate on that origin only; another certificate or origin stays an error', async () => {
    const own = await readFile((await ca.issue('edge')).certFile, 'utf8');
    const other = await readFile((await ca.issue('other')).certFile, 'utf8');
    const fingerprint = new X509Certificate(own).fingerprint256;
    const origin = 'https://127.0.0.1:8443';
    assert.equal(isOwnCertificate(`${origin}/studies`, own, origin, fingerprint), true);
    assert.equal(isOwnCertificate(`${origin}/studies`, other, origin, fingerprint), false);
    assert.equal(isOwnCertificate('https://evil.example/', own, origin, fingerprint), false);
    assert.equal(isOwnCertificate(`${origin}/`, own, origin, undefined), false);
    assert.equal(isOwnCertificate(`${origin}/`, 'not a certificate', origin, fingerprint), false);
  });
});
