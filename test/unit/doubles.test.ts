// Proves the Entra ID and Azure DICOM service doubles behave as documented, driven by the real
// @azure/msal-node and plain fetch.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ConfidentialClientApplication, PublicClientApplication, type AuthenticationResult } from '@azure/msal-node';
import { DicomDict, DicomMetaDictionary } from '../../main/core/dicom/dcmjs.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { workitemDataset } from '../doubles/azure-dicom-workitems.js';
import { Tag, firstValue, type DicomJson } from '../doubles/dicom-json.js';
import { DICOM_DEFAULT_SCOPE, DICOM_RESOURCE, EntraDouble, publicKeyThumbprintSha256 } from '../doubles/entra.js';
import { buildMultipartRelated, readMultipartRelated } from '../doubles/multipart-related.js';

// ---- a DICOM instance made with dcmjs ------------------------------------------------------

const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

const uid = () => `2.25.${BigInt(`0x${randomUUID().replace(/-/g, '')}`).toString()}`;

function makeInstance(ids: { study: string; series?: string; sop?: string; transferSyntax?: string }): { sop: string; bytes: Buffer } {
  const sop = ids.sop ?? uid();
  const dict = new DicomDict(
    DicomMetaDictionary.denaturalizeDataset({
      FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
      MediaStorageSOPClassUID: SECONDARY_CAPTURE,
      MediaStorageSOPInstanceUID: sop,
      TransferSyntaxUID: ids.transferSyntax ?? EXPLICIT_LE,
      ImplementationClassUID: '2.25.1',
    }),
  );
  dict.dict = DicomMetaDictionary.denaturalizeDataset({
    SOPClassUID: SECONDARY_CAPTURE,
    SOPInstanceUID: sop,
    StudyInstanceUID: ids.study,
    SeriesInstanceUID: ids.series ?? `${ids.study}.1`,
    PatientID: 'EDGE-1',
    PatientName: 'Test^Patient',
    Modality: 'OT',
    StudyDate: '20240101',
  });
  return { sop, bytes: Buffer.from(dict.write()) };
}

// ---- helpers -------------------------------------------------------------------------------

async function stow(url: string, instances: Buffer[], init: { token?: string; method?: string } = {}) {
  const { body, contentType } = buildMultipartRelated(instances);
  const res = await fetch(url, {
    method: init.method ?? 'POST',
    headers: {
      'content-type': contentType,
      accept: 'application/dicom+json',
      ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
    },
    body: new Uint8Array(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: (text ? JSON.parse(text) : undefined) as DicomJson | undefined };
}

const seq = (body: DicomJson | undefined, tag: string) => (body?.[tag]?.Value ?? []) as DicomJson[];

async function waitUntil(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ---- tests ---------------------------------------------------------------------------------

describe('multipart/related reader', () => {
  test('reads parts split at every byte boundary, with preamble and epilogue', async () => {
    const a = Buffer.from('first\r\n--not-a-boundary\r\npart');
    const b = Buffer.alloc(3000, 7);
    const built = buildMultipartRelated([a, b], { boundary: 'XyZ' });
    const body = Buffer.concat([Buffer.from('preamble\r\n'), built.body, Buffer.from('epilogue')]);
    async function* oneByte() {
      for (let i = 0; i < body.length; i++) yield body.subarray(i, i + 1);
    }
    const parts = [];
    for await (const p of readMultipartRelated(oneByte(), 'XyZ')) parts.push(p);
    assert.equal(parts.length, 2);
    assert.deepEqual(parts[0].body, a);
    assert.deepEqual(parts[1].body, b);
    assert.equal(parts[0].headers['content-type'], 'application/dicom');
  });

  test('a body without its close delimiter is an error', async () => {
    const { body } = buildMultipartRelated([Buffer.from('x')], { boundary: 'B' });
    async function* cut() {
      yield body.subarray(0, body.length - 6);
    }
    await assert.rejects(async () => {
      for await (const _ of readMultipartRelated(cut(), 'B')) void _;
    }, /close delimiter/);
  });
});

describe('Entra double with msal-node', () => {
  let entra: EntraDouble;
  before(async () => {
    entra = await EntraDouble.start();
  });
  after(() => entra.stop());

  test('client credentials with a secret: RS256 token for the DICOM audience, no other host reached', async () => {
    entra.registerConfidentialClient({ clientId: 'edge-app', secret: 's3cret', roles: ['DICOM.Write'] });
    const system = entra.msalSystem();
    const app = new ConfidentialClientApplication({ auth: { ...entra.msalAuth('edge-app'), clientSecret: 's3cret' }, system });
    const before = entra.tokenRequestCount('client_credentials');
    const result = await app.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] });
    assert.ok(result?.accessToken);
    const claims = await entra.verifyAccessToken(result.accessToken);
    assert.equal(claims.aud, DICOM_RESOURCE);
    assert.equal(claims.iss, `https://sts.windows.net/${entra.tenantId}/`);
    assert.equal(claims.tid, entra.tenantId);
    assert.equal(claims.appid, 'edge-app');
    assert.deepEqual(claims.roles, ['DICOM.Write']);
    assert.equal((claims.exp as number) - (claims.iat as number), entra.tokenLifetimeSeconds);
    assert.equal(entra.tokenRequestCount('client_credentials'), before + 1);
    // authorityMetadata + cloudDiscoveryMetadata given: msal asked only for the token endpoint.
    assert.deepEqual(
      system.networkClient.urls.map((u) => u.split('?')[0]),
      [`${entra.authority}/oauth2/v2.0/token`],
    );
  });

  test('without metadata strings msal discovers through the double (knownAuthorities + network client)', async () => {
    entra.registerConfidentialClient({ clientId: 'edge-discover', secret: 'x' });
    const system = entra.msalSystem();
    const app = new ConfidentialClientApplication({
      auth: { clientId: 'edge-discover', clientSecret: 'x', authority: entra.authority, knownAuthorities: [new URL(entra.authority).host] },
      system,
    });
    const result = await app.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] });
    assert.ok(result?.accessToken);
    assert.ok(system.networkClient.urls.some((u) => u.endsWith('/v2.0/.well-known/openid-configuration')));
    assert.ok(system.networkClient.urls.every((u) => u.startsWith(entra.advertisedOrigin)));
  });

  test('a wrong secret is refused with 401 invalid_client / AADSTS7000215', async () => {
    entra.registerConfidentialClient({ clientId: 'edge-wrong', secret: 'right' });
    const app = new ConfidentialClientApplication({ auth: { ...entra.msalAuth('edge-wrong'), clientSecret: 'wrong' }, system: entra.msalSystem() });
    await assert.rejects(app.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] }), (err: { errorCode?: string; message: string }) => {
      assert.equal(err.errorCode, 'invalid_client');
      assert.match(err.message, /7000215/);
      return true;
    });
    assert.equal(entra.tokenRequests.at(-1)?.status, 401);
    // the raw endpoint answers the same way
    const raw = await fetch(entra.tokenUrl, {
      method: 'POST',
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'edge-wrong', client_secret: 'nope', scope: DICOM_DEFAULT_SCOPE }),
    });
    assert.equal(raw.status, 401);
    const body = (await raw.json()) as { error: string; error_codes: number[] };
    assert.equal(body.error, 'invalid_client');
    assert.deepEqual(body.error_codes, [7000215]);
  });

  test('client credentials with a certificate: the assertion is verified with the registered key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const thumbprintSha256 = publicKeyThumbprintSha256(publicKey);
    entra.registerConfidentialClient({ clientId: 'edge-cert', certificate: { publicKey, thumbprintSha256 } });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const app = new ConfidentialClientApplication({
      auth: { ...entra.msalAuth('edge-cert'), clientCertificate: { thumbprintSha256, privateKey: pem } },
      system: entra.msalSystem(),
    });
    const result = await app.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] });
    const claims = await entra.verifyAccessToken(result!.accessToken);
    assert.equal(claims.appidacr, '2');
    assert.equal(entra.tokenRequests.at(-1)?.clientAuth, 'certificate');

    // signed by another key → invalid_client
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const impostor = new ConfidentialClientApplication({
      auth: { ...entra.msalAuth('edge-cert'), clientCertificate: { thumbprintSha256, privateKey: other } },
      system: entra.msalSystem(),
    });
    await assert.rejects(impostor.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] }), /invalid_client/);
  });

  test('device code: pending until approved, then access + refresh tokens; refresh works', async () => {
    entra.registerPublicClient('edge-desktop');
    entra.tokenLifetimeSeconds = 60; // under msal's 300 s renewal offset: the next silent call must refresh
    try {
      const pca = new PublicClientApplication({ auth: entra.msalAuth('edge-desktop'), system: entra.msalSystem() });
      let shown: { userCode: string; message: string } | undefined;
      const deviceBefore = entra.tokenRequestCount('device_code');
      const pending = pca.acquireTokenByDeviceCode({
        scopes: [DICOM_DEFAULT_SCOPE],
        deviceCodeCallback: (r) => {
          shown = r;
        },
      });
      await waitUntil(() => entra.tokenRequestCount('device_code') > deviceBefore, 'the first poll');
      assert.ok(shown);
      assert.match(shown.message, new RegExp(shown.userCode));
      assert.equal(entra.tokenRequests.at(-1)?.error, 'authorization_pending');
      entra.approveDeviceCode(shown.userCode, { upn: 'tech@clinic.test' });
      const result = (await pending) as AuthenticationResult;
      const claims = await entra.verifyAccessToken(result.accessToken);
      assert.equal(claims.upn, 'tech@clinic.test');
      assert.equal(claims.scp, 'user_impersonation');
      assert.equal(result.account?.username, 'tech@clinic.test');

      const refreshBefore = entra.tokenRequestCount('refresh_token');
      const silent = await pca.acquireTokenSilent({ account: result.account!, scopes: [DICOM_DEFAULT_SCOPE] });
      assert.equal(entra.tokenRequestCount('refresh_token'), refreshBefore + 1);
      assert.notEqual(silent.accessToken, result.accessToken);
      await entra.verifyAccessToken(silent.accessToken);
    } finally {
      entra.tokenLifetimeSeconds = 3600;
    }
  });
});

describe('Azure DICOM double', () => {
  let entra: EntraDouble;
  let dicom: AzureDicomDouble;
  let token: string;

  before(async () => {
    entra = await EntraDouble.start();
    entra.registerConfidentialClient({ clientId: 'edge', secret: 'pw' });
    dicom = await AzureDicomDouble.start({
      auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId },
    });
    const app = new ConfidentialClientApplication({ auth: { ...entra.msalAuth('edge'), clientSecret: 'pw' }, system: entra.msalSystem() });
    token = (await app.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] }))!.accessToken;
  });
  after(async () => {
    await dicom.stop();
    await entra.stop();
  });

  test('stores with an msal token (200), answers QIDO and WADO from what it holds', async () => {
    const study = uid();
    const a = makeInstance({ study });
    const b = makeInstance({ study });
    const res = await stow(`${dicom.baseUrl}/studies/${study}`, [a.bytes, b.bytes], { token });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/dicom+json');
    const refs = seq(res.json, Tag.ReferencedSOPSequence);
    assert.deepEqual(refs.map((r) => firstValue(r, Tag.ReferencedSOPInstanceUID)), [a.sop, b.sop]);
    assert.equal(firstValue(refs[0], Tag.ReferencedSOPClassUID), SECONDARY_CAPTURE);
    assert.match(String(firstValue(refs[0], Tag.RetrieveURL)), new RegExp(`/v2/studies/${study}/series/.+/instances/${a.sop}$`));
    assert.equal(firstValue(res.json, Tag.RetrieveURL), `${dicom.baseUrl}/studies/${study}`);
    assert.equal(dicom.receiveCount(a.sop), 1);
    assert.deepEqual(dicom.storedInstance(a.sop)?.bytes, a.bytes);

    const auth = { authorization: `Bearer ${token}` };
    const qido = await fetch(`${dicom.baseUrl}/studies/${study}/instances`, { headers: auth });
    assert.equal(qido.status, 200);
    assert.equal(((await qido.json()) as unknown[]).length, 2);
    const studies = await fetch(`${dicom.baseUrl}/studies?StudyInstanceUID=${study}`, { headers: auth });
    assert.equal(((await studies.json()) as unknown[]).length, 1);
    const none = await fetch(`${dicom.baseUrl}/studies?StudyInstanceUID=${uid()}`, { headers: auth });
    assert.equal(none.status, 204);

    const series = dicom.storedInstance(a.sop)!.seriesUid;
    const wado = await fetch(`${dicom.baseUrl}/studies/${study}/series/${series}/instances/${a.sop}`, {
      headers: { ...auth, accept: 'application/dicom; transfer-syntax=*' },
    });
    assert.equal(wado.status, 200);
    assert.deepEqual(Buffer.from(await wado.arrayBuffer()), a.bytes);
    const wholeStudy = await fetch(`${dicom.baseUrl}/studies/${study}`, { headers: { ...auth, accept: 'multipart/related; type="application/dicom"' } });
    assert.equal(wholeStudy.status, 200);
    const boundary = /boundary=([^;]+)/.exec(wholeStudy.headers.get('content-type') ?? '')?.[1] ?? '';
    const parts = [];
    for await (const p of readMultipartRelated([Buffer.from(await wholeStudy.arrayBuffer())], boundary)) parts.push(p);
    assert.equal(parts.length, 2);

    const gone = await fetch(`${dicom.baseUrl}/studies/${study}/series/${series}/instances/${b.sop}`, { method: 'DELETE', headers: auth });
    assert.equal(gone.status, 204);
    assert.deepEqual(dicom.storedInstances().filter((i) => i.studyUid === study).map((i) => i.sopUid), [a.sop]);
  });

  test('an instance stored before (seeded) is a 45070 conflict', async () => {
    const { bytes, sop } = makeInstance({ study: uid() });
    dicom.seedInstance(bytes);
    const res = await stow(`${dicom.baseUrl}/studies`, [bytes], { token });
    assert.equal(res.status, 409);
    assert.equal(dicom.receiveCount(sop), 1);
    assert.equal(dicom.storeCount(sop), 0);
  });

  test('missing, expired and wrong-audience tokens get 401 with a Bearer challenge; a missing role gets 403', async () => {
    const study = uid();
    const { bytes, sop } = makeInstance({ study });
    const missing = await stow(`${dicom.baseUrl}/studies`, [bytes]);
    assert.equal(missing.status, 401);
    assert.match(missing.headers.get('www-authenticate') ?? '', /^Bearer /);

    const expired = await stow(`${dicom.baseUrl}/studies`, [bytes], { token: await entra.issueAccessToken({ lifetimeSeconds: -60 }) });
    assert.equal(expired.status, 401);
    assert.match(expired.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.match(expired.headers.get('www-authenticate') ?? '', /expired/);

    const wrongAudience = await stow(`${dicom.baseUrl}/studies`, [bytes], {
      token: await entra.issueAccessToken({ audience: 'https://management.azure.com' }),
    });
    assert.equal(wrongAudience.status, 401);
    assert.match(wrongAudience.headers.get('www-authenticate') ?? '', /error="invalid_token"/);

    const otherEntra = await EntraDouble.start({ tenantId: entra.tenantId });
    try {
      const forged = await stow(`${dicom.baseUrl}/studies`, [bytes], { token: await otherEntra.issueAccessToken() });
      assert.equal(forged.status, 401);
    } finally {
      await otherEntra.stop();
    }

    dicom.setRequiredRole('DICOM.Write');
    try {
      const forbidden = await stow(`${dicom.baseUrl}/studies`, [bytes], { token });
      assert.equal(forbidden.status, 403);
      const withRole = await stow(`${dicom.baseUrl}/studies`, [bytes], { token: await entra.issueAccessToken({ roles: ['DICOM.Write'] }) });
      assert.equal(withRole.status, 200);
    } finally {
      dicom.setRequiredRole(undefined);
    }
    assert.equal(dicom.storeCount(sop), 1);
    assert.deepEqual(
      dicom.storeRequests().slice(-6).map((r) => r.auth),
      ['missing', 'invalid', 'invalid', 'invalid', 'forbidden', 'ok'],
    );
  });

  test('storing the same instance again: 409 with FailureReason 45070; PUT upserts with 200', async () => {
    const study = uid();
    const { bytes, sop } = makeInstance({ study });
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [bytes], { token })).status, 200);
    const again = await stow(`${dicom.baseUrl}/studies`, [bytes], { token });
    assert.equal(again.status, 409);
    const failed = seq(again.json, Tag.FailedSOPSequence);
    assert.equal(failed.length, 1);
    assert.equal(firstValue(failed[0], Tag.FailureReason), 45070);
    assert.equal(firstValue(failed[0], Tag.ReferencedSOPInstanceUID), sop);
    assert.equal(again.json?.[Tag.ReferencedSOPSequence], undefined);
    assert.equal(dicom.receiveCount(sop), 2);
    assert.equal(dicom.storeCount(sop), 1);

    const upsert = await stow(`${dicom.baseUrl}/studies/${study}`, [bytes], { token, method: 'PUT' });
    assert.equal(upsert.status, 200);
    assert.equal(dicom.storedInstance(sop)?.writes, 2);
  });

  test('a study mismatch with the URL is 43265; mixed results are 202', async () => {
    const study = uid();
    const mine = makeInstance({ study });
    const foreign = makeInstance({ study: uid() });
    const onlyForeign = await stow(`${dicom.baseUrl}/studies/${study}`, [foreign.bytes], { token });
    assert.equal(onlyForeign.status, 409);
    assert.equal(firstValue(seq(onlyForeign.json, Tag.FailedSOPSequence)[0], Tag.FailureReason), 43265);

    const mixed = await stow(`${dicom.baseUrl}/studies/${study}`, [mine.bytes, foreign.bytes], { token });
    assert.equal(mixed.status, 202);
    assert.deepEqual(seq(mixed.json, Tag.ReferencedSOPSequence).map((r) => firstValue(r, Tag.ReferencedSOPInstanceUID)), [mine.sop]);
    const failed = seq(mixed.json, Tag.FailedSOPSequence);
    assert.deepEqual(failed.map((f) => [firstValue(f, Tag.ReferencedSOPInstanceUID), firstValue(f, Tag.FailureReason)]), [[foreign.sop, 43265]]);
    assert.equal(dicom.storedInstance(foreign.sop), undefined);
  });

  test('implicit VR and the warning fault store with WarningReason 45063 and answer 202', async () => {
    const study = uid();
    const implicit = makeInstance({ study, transferSyntax: IMPLICIT_LE });
    const res = await stow(`${dicom.baseUrl}/studies`, [implicit.bytes], { token });
    assert.equal(res.status, 202);
    assert.equal(firstValue(seq(res.json, Tag.ReferencedSOPSequence)[0], Tag.WarningReason), 45063);

    await dicom.setFault({ kind: 'warning', times: 1 });
    const warned = await stow(`${dicom.baseUrl}/studies`, [makeInstance({ study }).bytes], { token });
    assert.equal(warned.status, 202);
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [makeInstance({ study }).bytes], { token })).status, 200);
  });

  test('reject-instance and transient-45071 faults', async () => {
    const study = uid();
    const good = makeInstance({ study });
    const bad = makeInstance({ study });
    await dicom.setFault({ kind: 'reject-instance', sopUids: [bad.sop], reason: 272 });
    const res = await stow(`${dicom.baseUrl}/studies`, [good.bytes, bad.bytes], { token });
    assert.equal(res.status, 202);
    assert.equal(firstValue(seq(res.json, Tag.FailedSOPSequence)[0], Tag.FailureReason), 272);

    const flaky = makeInstance({ study });
    await dicom.setFault({ kind: 'transient-45071', sopUids: [flaky.sop], failures: 1 });
    const first = await stow(`${dicom.baseUrl}/studies`, [flaky.bytes], { token });
    assert.equal(first.status, 409);
    assert.equal(firstValue(seq(first.json, Tag.FailedSOPSequence)[0], Tag.FailureReason), 45071);
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [flaky.bytes], { token })).status, 200);
    await dicom.clearFault();
  });

  test('too-large answers 413 and stores nothing', async () => {
    const study = uid();
    const a = makeInstance({ study });
    const b = makeInstance({ study });
    await dicom.setFault({ kind: 'too-large', maxBytes: 500 });
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [a.bytes, b.bytes], { token })).status, 413);
    await dicom.setFault({ kind: 'too-large', maxInstances: 1 });
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [a.bytes, b.bytes], { token })).status, 413);
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [a.bytes], { token })).status, 200);
    await dicom.clearFault();
    assert.equal(dicom.storedInstance(b.sop), undefined);
  });

  test('drop-mid-body closes the connection without an answer and stores nothing', async () => {
    const { bytes, sop } = makeInstance({ study: uid() });
    await dicom.setFault({ kind: 'drop-mid-body', times: 1 });
    await assert.rejects(stow(`${dicom.baseUrl}/studies`, [bytes], { token }));
    const last = dicom.storeRequests().at(-1)!;
    assert.equal(last.status, 'dropped');
    assert.equal(last.fault, 'drop-mid-body');
    assert.equal(dicom.storedInstance(sop), undefined);
    assert.equal(dicom.receiveCount(sop), 0);
    assert.equal(dicom.activeFault, undefined); // times: 1 used up
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [bytes], { token })).status, 200);
  });

  test('drop-after-store stores but never answers (a lost response)', async () => {
    const { bytes, sop } = makeInstance({ study: uid() });
    await dicom.setFault({ kind: 'drop-after-store', times: 1 });
    await assert.rejects(stow(`${dicom.baseUrl}/studies`, [bytes], { token }));
    assert.equal(dicom.storeCount(sop), 1);
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [bytes], { token })).status, 409);
  });

  test('status, flap and down faults', async () => {
    const study = uid();
    await dicom.setFault({ kind: 'status', status: 503, retryAfter: 7, times: 1 });
    const busy = await stow(`${dicom.baseUrl}/studies`, [makeInstance({ study }).bytes], { token });
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get('retry-after'), '7');
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [makeInstance({ study }).bytes], { token })).status, 200);

    await dicom.setFault({ kind: 'flap', every: 2, down: { status: 429, retryAfter: 1 } });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await stow(`${dicom.baseUrl}/studies`, [makeInstance({ study }).bytes], { token })).status);
    assert.deepEqual(statuses, [200, 200, 429, 429, 200, 200]);

    await dicom.setFault({ kind: 'down' });
    await assert.rejects(fetch(`${dicom.baseUrl}/studies?StudyInstanceUID=${study}`));
    await dicom.setFault({ kind: 'down', mode: 'refuse' });
    await assert.rejects(fetch(`${dicom.baseUrl}/studies?StudyInstanceUID=${study}`), (err: { cause?: { code?: string } }) => {
      assert.equal(err.cause?.code, 'ECONNREFUSED');
      return true;
    });
    await dicom.setFault({ kind: 'down', mode: 'reset' }); // listening again, resetting connections
    await assert.rejects(fetch(`${dicom.baseUrl}/studies?StudyInstanceUID=${study}`), (err: { cause?: { code?: string } }) => {
      assert.notEqual(err.cause?.code, 'ECONNREFUSED');
      return true;
    });
    await dicom.clearFault();
    const up = await fetch(`${dicom.baseUrl}/studies/${study}/instances`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(((await up.json()) as unknown[]).length, 5);
  });

  test('delay holds the answer', async () => {
    await dicom.setFault({ kind: 'delay', ms: 150, times: 1 });
    const started = Date.now();
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [makeInstance({ study: uid() }).bytes], { token })).status, 200);
    assert.ok(Date.now() - started >= 140);
  });

  test('partitions keep their own instances and RetrieveURLs', async () => {
    const study = uid();
    const { bytes, sop } = makeInstance({ study });
    const res = await stow(`${dicom.partitionUrl('clinic-a')}/studies`, [bytes], { token });
    assert.equal(res.status, 200);
    assert.match(String(firstValue(seq(res.json, Tag.ReferencedSOPSequence)[0], Tag.RetrieveURL)), /\/v2\/partitions\/clinic-a\/studies\//);
    assert.equal(dicom.storedInstance(sop, 'clinic-a')?.partition, 'clinic-a');
    assert.equal(dicom.storedInstance(sop), undefined);
    assert.equal((await stow(`${dicom.baseUrl}/studies`, [bytes], { token })).status, 200); // another partition: not a duplicate
  });

  test('bad requests: 415 wrong content type, 400 no boundary or bad study UID, 204 no parts, 406 Accept', async () => {
    const { bytes } = makeInstance({ study: uid() });
    const post = (headers: Record<string, string>, body: Buffer | string, path = '/studies') =>
      fetch(`${dicom.baseUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, ...headers },
        body: typeof body === 'string' ? body : new Uint8Array(body),
      });
    assert.equal((await post({ 'content-type': 'application/json' }, '{}')).status, 415);
    assert.equal((await post({ 'content-type': 'multipart/related; type="application/dicom+json"; boundary=x' }, bytes)).status, 415);
    assert.equal((await post({ 'content-type': 'multipart/related; type="application/dicom"' }, bytes)).status, 400);
    const { body, contentType } = buildMultipartRelated([bytes]);
    assert.equal((await post({ 'content-type': contentType }, body, '/studies/not_a_uid!')).status, 400);
    assert.equal((await post({ 'content-type': 'multipart/related; type="application/dicom"; boundary=e' }, '--e--\r\n')).status, 204);
    assert.equal((await post({ 'content-type': contentType, accept: 'application/dicom+xml' }, body)).status, 406);
    assert.equal((await post({ 'content-type': contentType }, body.subarray(0, body.length - 10))).status, 400);
    assert.equal((await post({ 'content-type': 'application/dicom' }, bytes)).status, 200); // single-part store
  });
});

describe('Azure DICOM double change feed and metadata', () => {
  let entra: EntraDouble;
  let dicom: AzureDicomDouble;
  let auth: Record<string, string>;

  before(async () => {
    entra = await EntraDouble.start();
    entra.registerConfidentialClient({ clientId: 'edge', secret: 'pw' });
    dicom = await AzureDicomDouble.start({ auth: { jwk: entra.publicJwk(), issuer: entra.accessTokenIssuer, tenantId: entra.tenantId } });
    const app = new ConfidentialClientApplication({ auth: { ...entra.msalAuth('edge'), clientSecret: 'pw' }, system: entra.msalSystem() });
    auth = { authorization: `Bearer ${(await app.acquireTokenByClientCredential({ scopes: [DICOM_DEFAULT_SCOPE] }))!.accessToken}` };
  });
  after(async () => {
    await dicom.stop();
    await entra.stop();
  });

  interface Entry {
    Sequence: number;
    PartitionName?: string;
    StudyInstanceUid: string;
    SeriesInstanceUid: string;
    SopInstanceUid: string;
    Action: string;
    Timestamp: string;
    State: string;
    Metadata?: DicomJson;
  }
  const feed = async (base: string, query = '') => {
    const res = await fetch(`${base}/changefeed${query}`, { headers: auth });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Entry[];
  };
  const token = () => auth.authorization!.slice('Bearer '.length);

  test('STOW, PUT and DELETE are recorded as create, update and delete with increasing Sequence; states follow the instance', async () => {
    const base = dicom.partitionUrl('feed-actions');
    const study = uid();
    const a = makeInstance({ study });
    const b = makeInstance({ study });
    assert.equal((await stow(`${base}/studies`, [a.bytes, b.bytes], { token: token() })).status, 200);
    assert.equal((await stow(`${base}/studies`, [a.bytes], { token: token(), method: 'PUT' })).status, 200);
    const series = dicom.storedInstance(b.sop, 'feed-actions')!.seriesUid;
    assert.equal((await fetch(`${base}/studies/${study}/series/${series}/instances/${b.sop}`, { method: 'DELETE', headers: auth })).status, 204);

    const entries = await feed(base);
    assert.deepEqual(entries.map((e) => [e.SopInstanceUid, e.Action, e.State]), [
      [a.sop, 'create', 'replaced'],
      [b.sop, 'create', 'deleted'],
      [a.sop, 'update', 'current'],
      [b.sop, 'delete', 'deleted'],
    ]);
    assert.ok(entries.every((e, i) => i === 0 || e.Sequence > entries[i - 1]!.Sequence), 'Sequence increases');
    assert.ok(entries.every((e) => e.StudyInstanceUid === study && !Number.isNaN(Date.parse(e.Timestamp))));
    assert.equal(firstValue(entries[0]!.Metadata, Tag.PatientID), 'EDGE-1', 'current metadata of an instance that exists');
    assert.equal(entries[0]!.Metadata?.['7FE00010'], undefined, 'no bulk data');
    assert.equal(entries[1]!.Metadata, undefined, 'none for a deleted instance');
    assert.ok((await feed(base, '?includeMetadata=false')).every((e) => e.Metadata === undefined));
    assert.equal((await fetch(`${base}/changefeed?includemetadata=maybe`, { headers: auth })).status, 400);
  });

  test('offset and limit page through a time window: startTime inclusive, endTime exclusive', async () => {
    const base = dicom.partitionUrl('feed-paging');
    const study = uid();
    for (let n = 0; n < 5; n++) {
      assert.equal((await stow(`${base}/studies`, [makeInstance({ study }).bytes], { token: token() })).status, 200);
      await new Promise((r) => setTimeout(r, 3)); // distinct timestamps
    }
    const all = await feed(base);
    assert.equal(all.length, 5);
    assert.deepEqual((await feed(base, '?offset=1&limit=2')).map((e) => e.Sequence), all.slice(1, 3).map((e) => e.Sequence));
    assert.deepEqual(await feed(base, '?offset=5'), []);
    const window = `?startTime=${encodeURIComponent(all[1]!.Timestamp)}&endTime=${encodeURIComponent(all[3]!.Timestamp)}`;
    assert.deepEqual((await feed(base, window)).map((e) => e.Sequence), [all[1]!.Sequence, all[2]!.Sequence]);
    assert.deepEqual((await feed(base, `${window}&offset=1`)).map((e) => e.Sequence), [all[2]!.Sequence]);
    for (const bad of ['?limit=0', '?limit=201', '?offset=-1', '?startTime=yesterday', `?startTime=${all[3]!.Timestamp}&endTime=${all[1]!.Timestamp}`]) {
      assert.equal((await fetch(`${base}/changefeed${bad}`, { headers: auth })).status, 400, bad);
    }
  });

  test('latest is the last entry, or 204 for an empty feed; partitions have their own feed, the root feed names them', async () => {
    const emptyLatest = await fetch(`${dicom.partitionUrl('feed-empty')}/changefeed/latest`, { headers: auth });
    assert.equal(emptyLatest.status, 204);
    const study = uid();
    const one = makeInstance({ study });
    const sop = one.sop;
    assert.equal((await stow(`${dicom.partitionUrl('feed-p1')}/studies`, [one.bytes], { token: token() })).status, 200);
    const latest = await fetch(`${dicom.partitionUrl('feed-p1')}/changefeed/latest?includeMetadata=false`, { headers: auth });
    assert.equal(latest.status, 200);
    const entry = (await latest.json()) as Entry;
    assert.equal(entry.SopInstanceUid, sop);
    assert.equal(entry.Metadata, undefined);
    assert.equal(entry.PartitionName, undefined, 'a partition feed does not repeat its name');
    assert.deepEqual(await feed(dicom.partitionUrl('feed-p2')), []);
    const root = await feed(dicom.baseUrl, '?limit=200');
    const atRoot = root.find((e) => e.SopInstanceUid === sop);
    assert.equal(atRoot?.PartitionName, 'feed-p1');
    assert.equal(atRoot?.Sequence, entry.Sequence, 'one Sequence across the service');
    const rootLatest = (await (await fetch(`${dicom.baseUrl}/changefeed/latest`, { headers: auth })).json()) as Entry;
    assert.equal(rootLatest.Sequence, dicom.changes().at(-1)!.sequence);
  });

  test('the feed and metadata need a token', async () => {
    assert.equal((await fetch(`${dicom.baseUrl}/changefeed`)).status, 401);
    assert.equal((await fetch(`${dicom.baseUrl}/changefeed/latest`)).status, 401);
  });

  test('metadata of a study, series and instance: DICOM JSON without bulk data; 404 for unknown', async () => {
    const base = dicom.partitionUrl('meta');
    const study = uid();
    const a = makeInstance({ study });
    const b = makeInstance({ study });
    assert.equal((await stow(`${base}/studies`, [a.bytes, b.bytes], { token: token() })).status, 200);
    const series = dicom.storedInstance(a.sop, 'meta')!.seriesUid;
    const get = (path: string, accept = 'application/dicom+json') => fetch(`${base}${path}`, { headers: { ...auth, accept } });
    const studyMeta = await get(`/studies/${study}/metadata`);
    assert.equal(studyMeta.status, 200);
    assert.equal(studyMeta.headers.get('content-type'), 'application/dicom+json');
    const datasets = (await studyMeta.json()) as DicomJson[];
    assert.deepEqual(datasets.map((d) => firstValue(d, Tag.SOPInstanceUID)).sort(), [a.sop, b.sop].sort());
    assert.equal(firstValue(datasets[0], Tag.PatientID), 'EDGE-1');
    assert.deepEqual(datasets[0]![Tag.PatientName]?.Value, [{ Alphabetic: 'Test^Patient' }]);
    assert.equal(firstValue(datasets[0], '00020010'), EXPLICIT_LE);
    assert.ok(datasets.every((d) => d['7FE00010'] === undefined));
    assert.equal(((await (await get(`/studies/${study}/series/${series}/metadata`)).json()) as unknown[]).length, 2);
    assert.equal(((await (await get(`/studies/${study}/series/${series}/instances/${a.sop}/metadata`)).json()) as unknown[]).length, 1);
    assert.equal((await get(`/studies/${uid()}/metadata`)).status, 404);
    assert.equal((await get(`/studies/${study}/metadata`, 'application/dicom')).status, 406);
    assert.equal(dicom.requestsOf('metadata').length, 5);
  });
});

describe('Azure DICOM double worklist (UPS-RS, PS3.18 §11)', () => {
  let dicom: AzureDicomDouble;
  const json = { 'content-type': 'application/dicom+json', accept: 'application/dicom+json' };
  const STATE = '00741000';
  const TRANSACTION = '00081195';
  const stateBody = (state: string, transactionUid?: string) =>
    JSON.stringify([{ [STATE]: { vr: 'CS', Value: [state] }, ...(transactionUid ? { [TRANSACTION]: { vr: 'UI', Value: [transactionUid] } } : {}) }]);
  const code = (value: string) => ({ vr: 'SQ', Value: [{ '00080100': { vr: 'SH', Value: [value] }, '00080102': { vr: 'SH', Value: ['DCM'] }, '00080104': { vr: 'LO', Value: [value] } }] });
  /** The final state attributes of COMPLETED (PS3.4 Table CC.2.5-3, code P). */
  const PERFORMED = { '00741216': { vr: 'SQ', Value: [{
    '00404028': code('CT1'), '00404050': { vr: 'DT', Value: ['20260115081500'] }, '00404019': code('CT'),
    '00404051': { vr: 'DT', Value: ['20260115083000'] }, '00404033': { vr: 'SQ', Value: [{ '0040E020': { vr: 'CS', Value: ['DICOM'] } }] },
  }] } };
  const put = (workitem: string, state: string, transactionUid?: string) =>
    fetch(`${dicom.baseUrl}/workitems/${workitem}/state`, { method: 'PUT', headers: json, body: stateBody(state, transactionUid) });

  before(async () => {
    dicom = await AzureDicomDouble.start();
  });
  after(async () => dicom.stop());

  test('create (201 + Location), 409 for the same UID, 400 for a bad state or a Transaction UID, 415 for another type', async () => {
    const workitem = uid();
    const dataset = workitemDataset({ uid: workitem, patientName: 'DOE^JOHN', patientId: 'P1', station: 'CT1', start: '20260115080000' });
    const created = await fetch(`${dicom.baseUrl}/workitems?${workitem}`, { method: 'POST', headers: json, body: JSON.stringify([dataset]) });
    assert.equal(created.status, 201);
    assert.equal(created.headers.get('location'), `${dicom.baseUrl}/workitems/${workitem}`);
    const again = await fetch(`${dicom.baseUrl}/workitems?${workitem}`, { method: 'POST', headers: json, body: JSON.stringify([dataset]) });
    assert.equal(again.status, 409);
    const other = uid();
    const inProgress = await fetch(`${dicom.baseUrl}/workitems?workitem=${other}`, { method: 'POST', headers: json,
      body: JSON.stringify([{ ...workitemDataset({ uid: other, patientName: 'X', patientId: 'X', station: 'CT1', start: '20260115' }), [STATE]: { vr: 'CS', Value: ['IN PROGRESS'] } }]) });
    assert.equal(inProgress.status, 400);
    const locked = await fetch(`${dicom.baseUrl}/workitems?${other}`, { method: 'POST', headers: json,
      body: JSON.stringify([{ ...workitemDataset({ uid: other, patientName: 'X', patientId: 'X', station: 'CT1', start: '20260115' }), [TRANSACTION]: { vr: 'UI', Value: ['2.25.9'] } }]) });
    assert.equal(locked.status, 400);
    const xml = await fetch(`${dicom.baseUrl}/workitems?${other}`, { method: 'POST', headers: { 'content-type': 'application/dicom+xml' }, body: '<x/>' });
    assert.equal(xml.status, 415);
    assert.equal(dicom.workitems.state(other), undefined, 'nothing was created by the refused requests');
  });

  test('search matches top-level and sequence attributes, ranges and states; 204 when nothing; retrieve; no Transaction UID shown', async () => {
    dicom.workitems.clear();
    const a = dicom.workitems.seed(workitemDataset({ uid: uid(), patientName: 'DOE^JOHN', patientId: 'P1', station: 'CT1', modality: 'CT', start: '20260115080000', accessionNumber: 'A1' }));
    const b = dicom.workitems.seed(workitemDataset({ uid: uid(), patientName: 'ROE^JANE', patientId: 'P2', station: 'MR1', start: '20260120093000', accessionNumber: 'A2' }));
    const search = async (query: string) => {
      const res = await fetch(`${dicom.baseUrl}/workitems?${query}`, { headers: { accept: 'application/dicom+json' } });
      return { status: res.status, body: res.status === 200 ? ((await res.json()) as DicomJson[]) : [] };
    };
    const uids = (found: { body: DicomJson[] }) => found.body.map((d) => firstValue(d, Tag.SOPInstanceUID));
    assert.deepEqual(uids(await search('ScheduledStationNameCodeSequence.CodeValue=CT1&ProcedureStepState=SCHEDULED')), [a]);
    assert.deepEqual(uids(await search('00404025.00080100=MR1')), [b]);
    assert.deepEqual(uids(await search('ScheduledProcedureStepStartDateTime=20260118-')), [b]);
    assert.deepEqual(uids(await search('PatientName=DOE*')), [a]);
    assert.deepEqual(uids(await search('0040A370.00080050=A2')), [b]);
    assert.equal((await search('PatientID=NOBODY')).status, 204);
    assert.equal((await search('NotAnAttribute=1')).status, 400);
    assert.equal((await search('TransactionUID=2.25.1')).status, 400);
    assert.equal((await search('limit=0')).status, 400);
    const narrow = (await search('PatientID=P1')).body[0]!;
    assert.equal(narrow['00081195'], undefined);
    assert.ok(narrow['0040A370'], 'Type 2 return keys come without includefield');

    assert.equal((await put(a, 'IN PROGRESS', '2.25.77')).status, 200);
    const retrieved = await fetch(`${dicom.baseUrl}/workitems/${a}`, { headers: { accept: 'application/dicom+json' } });
    assert.equal(retrieved.status, 200);
    const [dataset] = (await retrieved.json()) as DicomJson[];
    assert.equal(firstValue(dataset, STATE), 'IN PROGRESS');
    assert.equal(dataset![TRANSACTION], undefined, 'the Transaction UID is the owner\'s lock and is never returned');
    assert.deepEqual(uids(await search('ProcedureStepState=SCHEDULED')), [b]);
    assert.equal((await fetch(`${dicom.baseUrl}/workitems/${uid()}`)).status, 404);
  });

  test('change state follows the state table: claim with a new Transaction UID, then only that UID; warnings where the standard gives them', async () => {
    dicom.workitems.clear();
    const w = dicom.workitems.seed(workitemDataset({ uid: uid(), patientName: 'DOE^JOHN', patientId: 'P1', station: 'CT1', start: '20260115' }));
    const warning = (res: Response) => res.headers.get('warning') ?? '';
    let res = await put(w, 'COMPLETED', '2.25.1');
    assert.equal(res.status, 409, 'a SCHEDULED workitem cannot be completed');
    assert.match(warning(res), /^299 .*: The Target URI did not reference a claimed Workitem\.$/);
    res = await put(w, 'IN PROGRESS');
    assert.equal(res.status, 400);
    assert.match(warning(res), /The Transaction UID is missing\./);
    assert.equal((await put(w, 'IN PROGRESS', '2.25.1')).status, 200);
    assert.equal(dicom.workitems.transactionUid(w), '2.25.1');
    res = await put(w, 'IN PROGRESS', '2.25.2');
    assert.equal(res.status, 409, 'already IN PROGRESS');
    res = await put(w, 'COMPLETED', '2.25.2');
    assert.equal(res.status, 400);
    assert.match(warning(res), /The Transaction UID is incorrect\./);
    assert.equal(dicom.workitems.state(w), 'IN PROGRESS');
    res = await put(w, 'COMPLETED', '2.25.1');
    assert.equal(res.status, 409, 'the final state requirements are not met yet');
    assert.match(await res.text(), /final state requirements of COMPLETED: missing UnifiedProcedureStepPerformedProcedureSequence, /);
    const update = (transaction: string) => fetch(`${dicom.baseUrl}/workitems/${w}?${transaction}`, { method: 'POST', headers: json, body: JSON.stringify([PERFORMED]) });
    res = await update('2.25.2');
    assert.equal(res.status, 400);
    assert.match(warning(res), /The Transaction UID is incorrect\./);
    assert.equal((await update('2.25.1')).status, 200);
    res = await put(w, 'COMPLETED', '2.25.1');
    assert.equal(res.status, 200);
    assert.equal(warning(res), '');
    assert.equal((await update('2.25.1')).status, 400, 'a COMPLETED workitem is not updated');
    res = await put(w, 'COMPLETED', '2.25.1');
    assert.equal(res.status, 200);
    assert.match(warning(res), /The UPS is already in the requested state of COMPLETED\./);
    res = await put(w, 'CANCELED', '2.25.1');
    assert.equal(res.status, 409, 'a COMPLETED workitem may no longer be updated');
    assert.equal((await put(w, 'SCHEDULED', '2.25.1')).status, 400);
    assert.equal((await put(uid(), 'IN PROGRESS', '2.25.1')).status, 404);
    const garbage = await fetch(`${dicom.baseUrl}/workitems/${w}/state`, { method: 'PUT', headers: json, body: 'not json' });
    assert.equal(garbage.status, 400);
    assert.deepEqual(dicom.workitems.appliedChanges(w).map((c) => c.requested), ['IN PROGRESS', 'COMPLETED']);
  });

  test('an injected answer replaces the next one and changes nothing; a dropped answer loses only the answer', async () => {
    dicom.workitems.clear();
    const w = dicom.workitems.seed(workitemDataset({ uid: uid(), patientName: 'DOE^JOHN', patientId: 'P1', station: 'CT1', start: '20260115' }));
    dicom.workitems.injectAnswer({ method: 'PUT', status: 409, body: '{"errors":[{"code":"Conflict","message":"busy"}]}' });
    const cancel = { '00741002': { vr: 'SQ', Value: [{ '00404052': { vr: 'DT', Value: ['20260115090000'] },
      '0074100E': { vr: 'SQ', Value: [{ '00080100': { vr: 'SH', Value: ['110513'] } }] } }] } };
    assert.equal((await put(w, 'IN PROGRESS', '2.25.5')).status, 409);
    assert.equal(dicom.workitems.state(w), 'SCHEDULED');
    dicom.workitems.injectAnswer({ method: 'GET', status: 200, body: 'not json{' });
    assert.equal(await (await fetch(`${dicom.baseUrl}/workitems`)).text(), 'not json{');
    assert.equal((await put(w, 'IN PROGRESS', '2.25.5')).status, 200);
    assert.equal((await fetch(`${dicom.baseUrl}/workitems/${w}?transaction=2.25.5`, { method: 'POST', headers: json, body: JSON.stringify([cancel]) })).status, 200);
    dicom.workitems.dropAnswerAfterApplying('PUT');
    await assert.rejects(put(w, 'CANCELED', '2.25.5'), 'the answer is lost');
    assert.equal(dicom.workitems.state(w), 'CANCELED', 'but the change was made');
  });
});
