import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SettingsFile } from '../../main/core/settings/settings-file.js';
import { describeIssues } from '../../main/core/contract/settings-problems.js';
import { SettingsError } from '../../main/core/settings/errors.js';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { applyOverrides } from '../../main/core/appliance.js';

describe('settings file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-settings-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  test('an empty data dir gets working defaults, written to settings.json', async () => {
    const sub = join(dir, 'fresh');
    const { settings } = await SettingsFile.open(sub);
    assert.equal(settings.aeTitle, 'DICOMEDGE');
    assert.equal(settings.dimse.port, 11112);
    assert.equal(settings.http.host, '127.0.0.1');
    assert.equal(settings.http.port, 8780);
    assert.deepEqual(settings.destinations, []);
    const onDisk = JSON.parse(await readFile(join(sub, 'settings.json'), 'utf8'));
    assert.equal(onDisk.aeTitle, 'DICOMEDGE');
  });

  const invalidCases: Array<[string, unknown, RegExp]> = [
    ['a port out of range', { dimse: { port: 70000 } }, /field "dimse\.port" has value 70000: .*65535/],
    ['an AE title too long', { aeTitle: 'THIS_AE_TITLE_IS_TOO_LONG' }, /field "aeTitle" has value "THIS_AE_TITLE_IS_TOO_LONG": must be 1 to 16/],
    ['a wrong type', { storage: { minFreeBytes: 'lots' } }, /field "storage\.minFreeBytes" has value "lots": .*number/],
    ['an unknown auth kind', { destinations: [{ name: 'cloud', baseUrl: 'https://x.example/v2', auth: { kind: 'magic' } }] }, /field "destinations\.0\.auth\.kind" has value "magic"/],
  ];
  for (const [label, content, pattern] of invalidCases) {
    test(`${label} stops the start, names the field, and leaves the file untouched`, async () => {
      const sub = await mkdtemp(join(dir, 'bad-'));
      const text = JSON.stringify(content, null, 2);
      await writeFile(join(sub, 'settings.json'), text);
      await assert.rejects(SettingsFile.open(sub), (error: Error) => {
        assert.ok(error instanceof SettingsError);
        assert.match(error.message, pattern);
        assert.match(error.message, /settings\.json/);
        return true;
      });
      assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), text);
    });
  }

  test('a file that is not JSON is named and untouched', async () => {
    const sub = await mkdtemp(join(dir, 'json-'));
    await writeFile(join(sub, 'settings.json'), '{ "aeTitle": ');
    await assert.rejects(SettingsFile.open(sub), /not valid JSON/);
    assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), '{ "aeTitle": ');
  });

  test('writes are validated and a bad write changes nothing', async () => {
    const sub = await mkdtemp(join(dir, 'write-'));
    const { file, settings } = await SettingsFile.open(sub);
    const before = await readFile(join(sub, 'settings.json'), 'utf8');
    await assert.rejects(file.write({ ...settings, dimse: { ...settings.dimse, maxAssociations: 0 } }), /dimse\.maxAssociations/);
    assert.equal(await readFile(join(sub, 'settings.json'), 'utf8'), before);
    await file.write({ ...settings, aeTitle: 'EDGE2' });
    assert.equal(JSON.parse(await readFile(join(sub, 'settings.json'), 'utf8')).aeTitle, 'EDGE2');
  });

  test('flags override settings, settings override defaults', async () => {
    const sub = await mkdtemp(join(dir, 'override-'));
    await writeFile(join(sub, 'settings.json'), JSON.stringify({ aeTitle: 'FROMFILE', http: { port: 9001 } }));
    const { settings } = await SettingsFile.open(sub);
    assert.equal(settings.aeTitle, 'FROMFILE');
    assert.equal(settings.http.port, 9001);
    assert.equal(settings.dimse.port, 11112);
    const merged = applyOverrides(settings, { aeTitle: 'FROMFLAG', dimsePort: 4242 });
    assert.equal(merged.aeTitle, 'FROMFLAG');
    assert.equal(merged.dimse.port, 4242);
    assert.equal(merged.http.port, 9001);
  });
});

describe('destination and sign-in URLs', () => {
  const problemsOf = (destination: Record<string, unknown>): string[] => {
    const data = { destinations: [{ name: 'cloud', ...destination }] };
    const result = settingsSchema.safeParse(data);
    return result.success ? [] : describeIssues(result.error, data);
  };

  const refusedBaseUrls: Array<[string, string, RegExp]> = [
    ['a file: URL', 'file:///etc/passwd', /must be an https: URL, not file:/],
    ['a javascript: URL', 'javascript:alert(1)', /must be an https: URL, not javascript:/],
    ['a gopher: URL', 'gopher://x.example:70/_', /must be an https: URL, not gopher:/],
    ['a data: URL', 'data:text/plain,hello', /must be an https: URL, not data:/],
    ['credentials in the URL', 'https://user:pw@x.example/v2', /must not carry a user name or password/],
    ['a user name alone in the URL', 'https://user@x.example/v2', /must not carry a user name or password/],
    ['the metadata address', 'https://169.254.169.254/latest/meta-data', /link-local or metadata address/],
    ['a link-local IPv4 address', 'https://169.254.10.20/v2', /link-local or metadata address/],
    ['the metadata address as a decimal number', 'https://2852039166/v2', /link-local or metadata address/],
    ['an IPv6 link-local address', 'https://[fe80::1]/v2', /link-local or metadata address/],
    ['an IPv6 link-local address at the end of fe80::/10', 'https://[febf::1]/v2', /link-local or metadata address/],
    ['the metadata address IPv4-mapped (dotted)', 'https://[::ffff:169.254.169.254]/v2', /link-local or metadata address/],
    ['the metadata address IPv4-mapped (hex)', 'https://[::ffff:a9fe:a9fe]/v2', /link-local or metadata address/],
    ['the metadata address through NAT64', 'https://[64:ff9b::a9fe:a9fe]/v2', /link-local or metadata address/],
    ['the AWS IPv6 metadata address', 'http://[fd00:ec2::254]/v2', /link-local or metadata address/],
    ['a metadata host name', 'https://metadata.google.internal/computeMetadata/v1', /metadata service name/],
    ['the unspecified address', 'https://0.0.0.0/v2', /link-local or metadata address/],
    ['plain http to a LAN host', 'http://192.168.1.5/dicom-web', /must be https: \(plain http: is only for loopback/],
    ['plain http to a public host', 'http://x.example/v2', /must be https:/],
    ['plain http IPv4-mapped to a LAN host', 'http://[::ffff:192.168.1.5]/v2', /must be https:/],
    ['not a URL', 'x.example/v2', /must be a URL/],
  ];
  for (const [label, baseUrl, message] of refusedBaseUrls) {
    test(`baseUrl: ${label} is refused, naming the field`, () => {
      const problems = problemsOf({ baseUrl });
      assert.ok(problems.some((p) => p.startsWith('field "destinations.0.baseUrl"') && message.test(p)), problems.join('\n'));
    });
  }

  const acceptedBaseUrls = [
    'https://ws-dicom.dicom.azurehealthcareapis.com/v2',
    'https://192.168.1.5:8443/dicom-web',
    'http://127.0.0.1:8042/dicom-web',
    'http://localhost:8042/dicom-web',
    'http://[::1]:8042/dicom-web',
    'http://[::ffff:127.0.0.1]:8042/dicom-web',
  ];
  for (const baseUrl of acceptedBaseUrls) {
    test(`baseUrl: ${baseUrl} is accepted`, () => assert.deepEqual(problemsOf({ baseUrl }), []));
  }

  test('plain http to a LAN host is accepted with the explicit allowInsecureHttp opt-in, and only http is opened by it', () => {
    assert.deepEqual(problemsOf({ baseUrl: 'http://192.168.1.5/dicom-web', allowInsecureHttp: true }), []);
    assert.match(problemsOf({ baseUrl: 'ftp://192.168.1.5/', allowInsecureHttp: true }).join('\n'), /not ftp:/);
    assert.match(problemsOf({ baseUrl: 'http://169.254.169.254/', allowInsecureHttp: true }).join('\n'), /link-local or metadata address/);
    assert.equal(settingsSchema.parse({ destinations: [{ name: 'c', baseUrl: 'https://x.example/v2' }] }).destinations[0]!.allowInsecureHttp, false);
  });

  for (const kind of ['entra-client-secret', 'entra-client-certificate', 'entra-device-code'] as const) {
    const auth = { kind, tenantId: 't', clientId: 'c', clientSecret: 's', certificateFile: '/c.pem', privateKeyFile: '/k.pem' };
    test(`${kind}: an http: authority is refused, even on loopback or with allowInsecureHttp`, () => {
      for (const authority of ['http://login.example/t', 'http://127.0.0.1:9/t']) {
        const problems = problemsOf({ baseUrl: 'https://x.example/v2', allowInsecureHttp: true, auth: { ...auth, authority } });
        assert.ok(problems.some((p) => p.startsWith('field "destinations.0.auth.authority"') && /must be an https: URL, not http:/.test(p)), problems.join('\n'));
      }
    });
    test(`${kind}: an authority at a metadata address or with credentials is refused; https is accepted`, () => {
      assert.match(problemsOf({ baseUrl: 'https://x.example/v2', auth: { ...auth, authority: 'https://169.254.169.254/t' } }).join('\n'), /auth\.authority.*link-local/);
      assert.match(problemsOf({ baseUrl: 'https://x.example/v2', auth: { ...auth, authority: 'https://a:b@login.example/t' } }).join('\n'), /auth\.authority.*user name or password/);
      assert.deepEqual(problemsOf({ baseUrl: 'https://x.example/v2', auth: { ...auth, authority: 'https://login.microsoftonline.com/t' } }), []);
    });
  }

  test('managed-identity: system-assigned without clientId; an empty clientId or a scope that is no https URI is refused, naming the field', () => {
    assert.deepEqual(problemsOf({ baseUrl: 'https://x.example/v2', auth: { kind: 'managed-identity' } }), []);
    assert.deepEqual(problemsOf({ baseUrl: 'https://x.example/v2', auth: { kind: 'managed-identity', clientId: '5c7b1f8e-0000-4000-8000-00000000abcd' } }), []);
    const parsed = settingsSchema.parse({ destinations: [{ name: 'c', baseUrl: 'https://x.example/v2', auth: { kind: 'managed-identity' } }] });
    assert.deepEqual(parsed.destinations[0]!.auth, { kind: 'managed-identity', scope: 'https://dicom.healthcareapis.azure.com/.default' });
    assert.match(problemsOf({ baseUrl: 'https://x.example/v2', auth: { kind: 'managed-identity', clientId: '' } }).join('\n'), /field "destinations\.0\.auth\.clientId".*must not be empty/);
    assert.match(problemsOf({ baseUrl: 'https://x.example/v2', auth: { kind: 'managed-identity', scope: 'dicom' } }).join('\n'), /field "destinations\.0\.auth\.scope".*https resource URI/);
  });

  test('a refused URL in settings.json stops the start, naming the field', async () => {
    const sub = await mkdtemp(join(tmpdir(), 'dicom-edge-url-'));
    try {
      await writeFile(join(sub, 'settings.json'), JSON.stringify({ destinations: [{ name: 'cloud', baseUrl: 'https://169.254.169.254/' }] }));
      await assert.rejects(SettingsFile.open(sub), /field "destinations\.0\.baseUrl" has value "https:\/\/169\.254\.169\.254\/": must not point at a link-local/);
    } finally {
      await rm(sub, { recursive: true, force: true });
    }
  });
});

describe('storage commitment settings', () => {
  const problemsOf = (storageCommitment: Record<string, unknown>): string[] => {
    const data = { storageCommitment };
    const result = settingsSchema.safeParse(data);
    return result.success ? [] : describeIssues(result.error, data);
  };

  test('defaults: local policy, 24 h time limit', () => {
    const parsed = settingsSchema.parse({});
    assert.equal(parsed.storageCommitment.defaultPolicy, 'local');
    assert.equal(parsed.storageCommitment.timeLimitMs, 86_400_000);
    assert.deepEqual(parsed.storageCommitment.policies, {});
  });

  test('a policy per calling AE is accepted', () => assert.deepEqual(problemsOf({ defaultPolicy: 'cloud', policies: { CT1: 'local' } }), []));

  test('an unknown policy, a bad AE title or a time limit under a second is refused, naming the field', () => {
    const unknown = problemsOf({ policies: { CT1: 'pacs' } });
    assert.ok(unknown.some((p) => p.startsWith('field "storageCommitment.policies.CT1"') && /'local'.*'cloud'/.test(p)), unknown.join('\n'));
    const badDefault = problemsOf({ defaultPolicy: 'somewhere' });
    assert.ok(badDefault.some((p) => p.startsWith('field "storageCommitment.defaultPolicy"')), badDefault.join('\n'));
    const badAe = problemsOf({ policies: { 'A\\B': 'local' } });
    assert.ok(badAe.some((p) => p.includes('storageCommitment.policies')), badAe.join('\n'));
    const short = problemsOf({ timeLimitMs: 10 });
    assert.ok(short.some((p) => p.startsWith('field "storageCommitment.timeLimitMs"') && /at least 1000/.test(p)), short.join('\n'));
  });
});
