import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BindRefusedError, checkAccess, checkBindPolicy, isLoopbackHost } from '../../main/core/web/access.js';
import { hashPassword, verifyPassword } from '../../main/core/web/password.js';
import { maskSettings, SECRET_MASK, unmaskSettings } from '../../main/core/web/settings-mask.js';
import { settingsSchema } from '../../main/core/settings/schema.js';

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
  const back = unmaskSettings(masked, settings) as typeof settings;
  assert.equal(back.http.apiToken, 'api-secret');
  assert.equal((back.destinations[0]!.auth as { clientSecret: string }).clientSecret, 'cs');
  const renamed = unmaskSettings({ ...masked, destinations: [{ ...masked.destinations[0], name: 'b' }] }, settings) as typeof settings;
  assert.equal((renamed.destinations[0]!.auth as { clientSecret?: string }).clientSecret, undefined, 'a mask never becomes a secret');
});
