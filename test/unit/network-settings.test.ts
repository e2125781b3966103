// The network settings and the choices made from them: which proxy a URL goes through (settings over
// the environment, NO_PROXY), the CA file checked at load, the proxy password sealed at rest and masked
// in /api, and certificate failures worded so an IT person knows what to do.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SECRET_MASK } from '../../main/core/contract/api/settings.js';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { fileSecretBox, openNetworkSecrets, sealSettingsFile, sealSettingsSecrets } from '../../main/core/forward/secrets.js';
import { explainEgressError, UNTRUSTED_CA_MESSAGE } from '../../main/core/network/egress-errors.js';
import { proxyFor, proxyRules } from '../../main/core/network/proxy-choice.js';
import { startProblems } from '../../main/core/start-checks.js';
import { maskSettings, unmaskSettings } from '../../main/core/web/settings-mask.js';

const noProxy = { url: '', user: '', password: '', noProxy: '' };
const chosen = (rules: ReturnType<typeof proxyRules>, url: string) => proxyFor(rules, new URL(url))?.origin;

describe('which proxy a request takes', () => {
  it('the environment: HTTPS_PROXY for https, HTTP_PROXY for http, either case, a bare host:port read as http', () => {
    const rules = proxyRules(noProxy, { https_proxy: 'proxy.lan:3128', HTTP_PROXY: 'http://plain.lan:8080' });
    assert.equal(chosen(rules, 'https://x.dicom.azurehealthcareapis.com/v2'), 'http://proxy.lan:3128');
    assert.equal(chosen(rules, 'http://pacs.lan/dicom-web'), 'http://plain.lan:8080');
    assert.equal(chosen(proxyRules(noProxy, {}), 'https://x.example'), undefined, 'no variables: direct');
  });

  it('NO_PROXY: names, .domain and *.domain suffixes, host:port, IPv6 and *', () => {
    const rules = proxyRules(noProxy, { HTTPS_PROXY: 'http://proxy.lan:3128', NO_PROXY: 'localhost, .clinic.lan,*.corp.example,10.0.0.5:8443,[::1],pacs' });
    assert.equal(chosen(rules, 'https://localhost/x'), undefined);
    assert.equal(chosen(rules, 'https://ris.clinic.lan/x'), undefined);
    assert.equal(chosen(rules, 'https://clinic.lan/x'), undefined);
    assert.equal(chosen(rules, 'https://a.b.corp.example/x'), undefined);
    assert.equal(chosen(rules, 'https://10.0.0.5:8443/x'), undefined);
    assert.equal(chosen(rules, 'https://10.0.0.5/x'), 'http://proxy.lan:3128', 'another port is not bypassed');
    assert.equal(chosen(rules, 'https://[::1]:9/x'), undefined);
    assert.equal(chosen(rules, 'https://pacs/x'), undefined);
    assert.equal(chosen(rules, 'https://notpacs/x'), 'http://proxy.lan:3128', 'a name matches whole labels only');
    assert.equal(chosen(rules, 'https://x.dicom.azurehealthcareapis.com/v2'), 'http://proxy.lan:3128');
    assert.equal(chosen(proxyRules(noProxy, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '*' }), 'https://anything/x'), undefined);
  });

  it('network.proxy overrides the environment for http and https alike, with its own noProxy and credentials', () => {
    const rules = proxyRules({ url: 'http://squid.clinic.lan:3128', user: 'edge', password: 'pw', noProxy: 'pacs.clinic.lan' },
      { HTTPS_PROXY: 'http://other:1', NO_PROXY: '*' });
    assert.equal(chosen(rules, 'https://x.dicom.azurehealthcareapis.com/v2'), 'http://squid.clinic.lan:3128');
    assert.equal(chosen(rules, 'http://orthanc.lan/dicom-web'), 'http://squid.clinic.lan:3128');
    assert.equal(chosen(rules, 'https://pacs.clinic.lan/x'), undefined);
    const route = proxyFor(rules, new URL('https://login.microsoftonline.com/t'))!;
    assert.equal(route.authorization, `Basic ${Buffer.from('edge:pw').toString('base64')}`);
    assert.ok(!route.origin.includes('pw'), 'the origin shown in messages carries no password');
  });
});

describe('network settings', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'net-settings-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const problemsOf = (network: unknown) => {
    const parsed = settingsSchema.safeParse({ network });
    return parsed.success ? [] : parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('a proxy url is refused with the field named when it carries credentials, a path or another scheme', () => {
    assert.deepEqual(problemsOf({ proxy: { url: 'http://proxy.lan:3128' } }), []);
    assert.match(problemsOf({ proxy: { url: 'http://u:p@proxy.lan:3128' } }).join(), /network\.proxy\.url: must not carry a user name or password/);
    assert.match(problemsOf({ proxy: { url: 'http://proxy.lan:3128/path' } }).join(), /network\.proxy\.url: must be only scheme, host and port/);
    assert.match(problemsOf({ proxy: { url: 'socks5://proxy.lan:1080' } }).join(), /network\.proxy\.url: must be an http: or https: URL/);
    assert.match(problemsOf({ proxy: { url: 'proxy.lan:3128x' } }).join(), /network\.proxy\.url/);
    assert.match(problemsOf({ proxy: { url: 'http://proxy.lan:3128', password: 'pw' } }).join(), /network\.proxy\.user: is required/);
  });

  it('a caFile that cannot be read or holds no certificate stops the start, naming network.caFile', async () => {
    const missing = join(dir, 'missing.pem');
    assert.match(startProblems(settingsSchema.parse({ network: { caFile: missing } })).join('\n'), /field "network\.caFile" has value ".*missing\.pem": cannot be read \(ENOENT\)/);
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    assert.match(startProblems(settingsSchema.parse({ network: { caFile: junk } })).join('\n'), /field "network\.caFile" has value ".*junk\.pem": holds no PEM certificate/);
    const broken = join(dir, 'broken.pem');
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    assert.match(startProblems(settingsSchema.parse({ network: { caFile: broken } })).join('\n'), /field "network\.caFile" .*certificate 1 of 1 cannot be parsed/);
  });

  it('the proxy password is sealed in memory and in the file, and opened only for the Egress', async () => {
    const box = fileSecretBox(dir);
    const settings = settingsSchema.parse({ network: { proxy: { url: 'http://proxy.lan:3128', user: 'edge', password: 'proxy-pw' } } });
    const sealed = sealSettingsSecrets(settings, box);
    assert.equal(sealed.changed, true);
    assert.ok(!JSON.stringify(sealed.settings).includes('proxy-pw'));
    assert.equal(openNetworkSecrets(sealed.settings.network, box).proxy.password, 'proxy-pw');

    const file = join(dir, 'settings.json');
    await writeFile(file, JSON.stringify({ network: { proxy: { url: 'http://proxy.lan:3128', user: 'edge', password: 'proxy-pw' } } }));
    assert.equal(sealSettingsFile(file, box), true);
    const stored = JSON.parse(await readFile(file, 'utf8')) as { network: { proxy: { password: string } } };
    assert.match(stored.network.proxy.password, /^enc:v1:/);
    assert.equal(box.open(stored.network.proxy.password), 'proxy-pw');
  });

  it('/api shows the proxy password as the mask and keeps it only for the same proxy url and user', () => {
    const current = settingsSchema.parse({ network: { proxy: { url: 'http://proxy.lan:3128', user: 'edge', password: 'enc:v1:sealed' } } });
    const masked = maskSettings(current);
    assert.equal(masked.network.proxy.password, SECRET_MASK);
    const kept = unmaskSettings(masked, current);
    assert.deepEqual(kept.problems, []);
    assert.equal((kept.value as typeof current).network.proxy.password, 'enc:v1:sealed');
    const moved = unmaskSettings({ ...masked, network: { ...masked.network, proxy: { ...masked.network.proxy, url: 'http://elsewhere:3128' } } }, current);
    assert.match(moved.problems.join(), /field "network\.proxy\.password" .*re-enter the password, because the proxy url or user changed/);
    assert.equal((moved.value as typeof current).network.proxy.password, undefined);
  });
});

describe('failures explained', () => {
  it('a certificate from an unknown CA says what to do; other errors pass unchanged without a proxy', () => {
    const untrusted = Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    const explained = explainEgressError(untrusted, new URL('https://x.example/v2'), undefined) as Error;
    assert.equal(explained.message, `${UNTRUSTED_CA_MESSAGE} (x.example: UNABLE_TO_VERIFY_LEAF_SIGNATURE)`);
    assert.match(UNTRUSTED_CA_MESSAGE, /^the upstream's certificate is signed by a CA this box does not trust: add it in Settings → Network$/);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    assert.equal(explainEgressError(refused, new URL('https://x.example/v2'), undefined), refused);
  });
});
