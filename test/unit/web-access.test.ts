import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BindRefusedError, checkAccess, checkBindPolicy, crossSiteReason, isLoopbackHost, misdirectedHostReason } from '../../main/core/web/access.js';
import { hashPassword, verifyPassword } from '../../main/core/web/password.js';
import { SECRET_MASK } from '../../main/core/contract/api/settings.js';
import { maskSettings, unmaskSettings } from '../../main/core/web/settings-mask.js';
import { settingsSchema } from '../../main/core/contract/settings.js';

test('loopback hosts are told apart from the rest', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.org']) assert.ok(!isLoopbackHost(host), host);
});

test('a non-loopback bind needs a configured token or basic auth', async () => {
  const base = { host: '0.0.0.0', configuredToken: '', sessionToken: 'generated' };
  assert.throws(() => checkBindPolicy(base), BindRefusedError);
  assert.doesNotThrow(() => checkBindPolicy({ ...base, configuredToken: 'x' }));
  const passwordHash = await hashPassword('pw');
  assert.doesNotThrow(() => checkBindPolicy({ ...base, basicAuth: { user: 'u', passwordHash } }));
  assert.throws(() => checkBindPolicy({ ...base, basicAuth: { user: 'u', passwordHash: 'scrypt$broken' } }), BindRefusedError);
  assert.doesNotThrow(() => checkBindPolicy({ ...base, host: '127.0.0.1' }));
});

test('bearer, cookie and basic credentials', async () => {
  const settings = { host: '127.0.0.1', configuredToken: '', sessionToken: 'tok', basicAuth: { user: 'tech', passwordHash: await hashPassword('pw') } };
  assert.deepEqual(await checkAccess(settings, { authorization: 'Bearer tok' }), { ok: true, via: 'bearer' });
  assert.equal((await checkAccess(settings, { authorization: 'Bearer tok2' })).ok, false);
  assert.equal((await checkAccess(settings, { cookie: 'a=b; dicom_edge_session=tok' })).ok, true);
  assert.equal((await checkAccess(settings, { cookie: 'dicom_edge_session=nope' })).ok, false);
  assert.equal((await checkAccess(settings, { authorization: `Basic ${Buffer.from('tech:pw').toString('base64')}` })).ok, true);
  assert.equal((await checkAccess(settings, { authorization: `Basic ${Buffer.from('tech:wrong').toString('base64')}` })).ok, false);
  assert.equal((await checkAccess(settings, {})).ok, false);
  assert.ok(await verifyPassword('pw', settings.basicAuth.passwordHash));
});

test('settings secrets are masked on read and kept when the mask comes back', () => {
  const settings = settingsSchema.parse({
    http: { apiToken: 'api-secret' },
    destinations: [{ name: 'a', baseUrl: 'https://x.example/dicom-web', auth: { kind: 'entra-client-secret', tenantId: 't', clientId: 'c', clientSecret: 'cs' } }],
  });
  const masked = maskSettings(settings);
  assert.equal(masked.http.apiToken, SECRET_MASK);
  assert.equal((masked.destinations[0]!.auth as { clientSecret: string }).clientSecret, SECRET_MASK);
  assert.ok(!JSON.stringify(masked).includes('api-secret') && !JSON.stringify(masked).includes('"cs"'));
  const back = unmaskSettings(masked, settings).value as typeof settings;
  assert.equal(back.http.apiToken, 'api-secret');
  assert.equal((back.destinations[0]!.auth as { clientSecret: string }).clientSecret, 'cs');
  const renamed = unmaskSettings({ ...masked, destinations: [{ ...masked.destinations[0], name: 'b' }] }, settings).value as typeof settings;
  assert.equal((renamed.destinations[0]!.auth as { clientSecret?: string }).clientSecret, undefined, 'a mask never becomes a secret');
});

test('a kept secret is bound to the URL, tenant, client, authority and scope it was entered for', () => {
  const entra = { kind: 'entra-client-secret', tenantId: 't', clientId: 'c', clientSecret: 'cs', authority: 'https://login.example/t' };
  const settings = settingsSchema.parse({
    destinations: [
      { name: 'a', baseUrl: 'https://x.example/v2', auth: entra },
      { name: 'b', baseUrl: 'https://y.example/v2', auth: { kind: 'basic', user: 'u', password: 'pw' } },
      { name: 'c', baseUrl: 'https://z.example/v2', auth: { kind: 'bearer', token: 'tk' } },
    ],
  });
  const masked = maskSettings(settings) as unknown as { destinations: Array<Record<string, any>> };
  const edit = (index: number, change: (d: Record<string, any>) => void) => {
    const copy = structuredClone(masked);
    change(copy.destinations[index]!);
    return unmaskSettings(copy, settings);
  };
  const cases: Array<[string, number, (d: Record<string, any>) => void, string]> = [
    ['baseUrl', 0, (d) => (d.baseUrl = 'https://evil.example/v2'), 'destinations.0.auth.clientSecret'],
    ['auth.tenantId', 0, (d) => (d.auth.tenantId = 'other-tenant'), 'destinations.0.auth.clientSecret'],
    ['auth.clientId', 0, (d) => (d.auth.clientId = 'other-client'), 'destinations.0.auth.clientSecret'],
    ['auth.authority', 0, (d) => (d.auth.authority = 'https://login.evil.example/t'), 'destinations.0.auth.clientSecret'],
    ['auth.authority', 0, (d) => delete d.auth.authority, 'destinations.0.auth.clientSecret'],
    ['auth.scope', 0, (d) => (d.auth.scope = 'https://evil.example/.default'), 'destinations.0.auth.clientSecret'],
    ['baseUrl', 1, (d) => (d.baseUrl = 'https://evil.example/v2'), 'destinations.1.auth.password'],
    ['baseUrl', 2, (d) => (d.baseUrl = 'https://evil.example/v2'), 'destinations.2.auth.token'],
  ];
  for (const [field, index, change, secretPath] of cases) {
    const { value, problems } = edit(index, change);
    assert.deepEqual(problems, [`field "${secretPath}" has value "${SECRET_MASK}": re-enter the secret, because ${field} changed`], field);
    const kept = JSON.stringify((value as typeof masked).destinations[index]);
    assert.ok(!kept.includes('"cs"') && !kept.includes('"pw"') && !kept.includes('"tk"'), `${field}: the stored secret is not put back`);
  }
  const both = edit(0, (d) => Object.assign(d, { baseUrl: 'https://evil.example/v2', auth: { ...d.auth, tenantId: 'x' } }));
  assert.match(both.problems.join(), /because baseUrl and auth\.tenantId changed/);
  // Unchanged binding (a default written out, another field edited): the stored secret is kept.
  const same = edit(0, (d) => Object.assign(d, { maxConcurrentRequests: 2, auth: { ...d.auth, scope: 'https://dicom.healthcareapis.azure.com/.default' } }));
  assert.deepEqual(same.problems, []);
  assert.equal((same.value as typeof masked).destinations[0]!.auth.clientSecret, 'cs');
  // A new secret with the new URL is simply taken.
  const retyped = edit(2, (d) => Object.assign(d, { baseUrl: 'https://new.example/v2', auth: { kind: 'bearer', token: 'new' } }));
  assert.deepEqual(retyped.problems, []);
  assert.equal((retyped.value as typeof masked).destinations[2]!.auth.token, 'new');
});

test('a state-changing request with the session cookie must come from our own origin or a corsOrigins entry', () => {
  const settings = { corsOrigins: ['https://viewer.clinic.example'] };
  const request = (method: string, origin?: string, fetchSite?: string) => ({ method, protocol: 'http', headers: { host: '127.0.0.1:8780', origin, 'sec-fetch-site': fetchSite } });
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    assert.match(crossSiteReason(settings, request(method, 'http://127.0.0.1:3000')) ?? '', /origin http:\/\/127\.0\.0\.1:3000 is not this appliance's \(http:\/\/127\.0\.0\.1:8780\)/, method);
    assert.equal(crossSiteReason(settings, request(method, 'http://127.0.0.1:8780')), undefined, method);
  }
  assert.ok(crossSiteReason(settings, request('POST', 'null')), 'an opaque origin');
  assert.ok(crossSiteReason(settings, request('POST', 'http://localhost:8780')), 'another name is another origin');
  assert.equal(crossSiteReason(settings, request('POST', 'https://viewer.clinic.example')), undefined);
  assert.match(crossSiteReason(settings, request('POST', undefined, 'same-site')) ?? '', /same-site request/);
  assert.ok(crossSiteReason(settings, request('POST', undefined, 'cross-site')));
  assert.equal(crossSiteReason(settings, request('POST', undefined, 'same-origin')), undefined);
  assert.equal(crossSiteReason(settings, request('POST')), undefined, 'no Origin and no Sec-Fetch-Site: not a browser page');
  assert.equal(crossSiteReason(settings, request('GET', 'http://127.0.0.1:3000', 'same-site')), undefined, 'reads are left to CORS');
});

test('only loopback names, the bound address and http.allowedHosts are answered to', () => {
  const loopbackBind = { host: '127.0.0.1', allowedHosts: ['Edge.Clinic.Example'] };
  for (const host of ['127.0.0.1:8780', 'localhost:8780', 'LOCALHOST', '[::1]:8780', '127.0.0.2', 'app.localhost:8780', 'edge.clinic.example:8780', 'edge.clinic.example.']) {
    assert.equal(misdirectedHostReason(loopbackBind, host), undefined, host);
  }
  assert.equal(misdirectedHostReason(loopbackBind, undefined), undefined, 'no Host header (HTTP/1.0)');
  for (const host of ['evil.example:8780', 'rebind.attacker.example', '192.168.1.5:8780', 'edge.clinic.example.evil.example']) {
    assert.match(misdirectedHostReason(loopbackBind, host) ?? '', /is not one this appliance answers to; add it to http\.allowedHosts/, host);
  }
  assert.match(misdirectedHostReason(loopbackBind, 'a b') ?? '', /not a valid host/);
  const lanBind = { host: '192.168.1.5', allowedHosts: [] };
  assert.equal(misdirectedHostReason(lanBind, '192.168.1.5:8780'), undefined);
  assert.ok(misdirectedHostReason(lanBind, '10.0.0.7:8780'));
  assert.ok(misdirectedHostReason(lanBind, 'edge-pc:8780'));
  const wildcard = { host: '0.0.0.0', allowedHosts: [] };
  assert.equal(misdirectedHostReason(wildcard, '10.0.0.7:8780'), undefined, 'any address of this machine');
  assert.equal(misdirectedHostReason(wildcard, '[fd00::7]:8780'), undefined);
  assert.ok(misdirectedHostReason(wildcard, 'edge-pc:8780'), 'a name still needs http.allowedHosts');
  assert.equal(settingsSchema.safeParse({ http: { allowedHosts: ['https://x.example'] } }).success, false);
  assert.equal(settingsSchema.safeParse({ http: { allowedHosts: ['x.example:8780'] } }).success, false);
  assert.equal(settingsSchema.safeParse({ http: { allowedHosts: ['edge-pc', 'edge.clinic.example', '192.168.1.5', '::1'] } }).success, true);
});
