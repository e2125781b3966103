// What the app asks of the archive over /api and QIDO-RS, with Orthanc (its DICOMweb plugin) as the archive:
// a study's location in /api/sync, POST /api/studies/:study/retrieve (202 at once, the study then local),
// the QIDO vendor parameter includecloud, and the archive block of /api/info (offline and online again as reads find it).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../support/forward-harness.js';
import { startGateProxy } from '../support/gate-proxy.js';
import { startOrthanc, type OrthancPeer } from '../support/peers.js';
import { makeStudy } from '../support/study.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

describe('the app\'s cloud API with Orthanc as the archive', { timeout: 120_000 }, () => {
  let dir: string;
  let orthanc: OrthancPeer;
  let w: WebAppliance;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-cloud-app-api-'));
    orthanc = await startOrthanc({ dir: join(dir, 'orthanc') });
    w = await startWebAppliance({ settings: { destinations: [{ name: 'orthanc', baseUrl: orthanc.dicomWebUrl, archive: true, retryBaseMs: 50, retryCapMs: 500 }] } });
  });
  after(async () => {
    await w?.stop();
    await orthanc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const json = async (path: string, init: { method?: string; body?: string } = {}) => {
    const response = await w.api(path, { headers: { accept: 'application/json', 'content-type': 'application/json' }, ...init });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  };
  const studies = async (query: string) => {
    const response = await w.api(`/dicom-web/studies?${query}`, { headers: { accept: 'application/dicom+json' } });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : []) as Array<Record<string, { Value?: unknown[] }>> };
  };

  test('includecloud=false answers from the index alone; the federated search lists the archive\'s study as cloud', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 3, patientId: 'APP-API-1', patientName: 'App^Api', rows: 16, columns: 16 });
    const studyUid = study[0]!.studyUid;
    for (const instance of study) {
      const res = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: instance.buffer as unknown as BodyInit, headers: { 'content-type': 'application/dicom' } });
      assert.equal(res.status, 200, await res.text());
    }
    assert.equal((await studies('PatientID=APP-API-1&includecloud=false')).status, 204, 'the index does not know it yet');
    assert.deepEqual((await json(`/api/sync?study=${studyUid}`)).body[0].location, null);
    const federated = await studies('PatientID=APP-API-1&includecloud=true');
    assert.deepEqual(federated.body.map((s) => s['0020000D']?.Value?.[0]), [studyUid]);
    // Now the index holds the archive's answer as a cloud row: the index alone finds it too.
    assert.equal((await studies('PatientID=APP-API-1&includecloud=false')).body.length, 1);
    const [sync] = (await json(`/api/sync?study=${studyUid}`)).body;
    assert.deepEqual([sync.location, sync.numLocalInstances, sync.numInstances, sync.pinned], ['cloud', 0, 3, false]);
    const bad = await studies('PatientID=APP-API-1&includecloud=maybe');
    assert.equal(bad.status, 400);

    // Retrieve: 202 at once, then the study is here.
    const retrieve = await json(`/api/studies/${studyUid}/retrieve`, { method: 'POST', body: '{}' });
    assert.equal(retrieve.status, 202, JSON.stringify(retrieve.body));
    assert.deepEqual(retrieve.body, { studyUid, fetching: true, location: 'cloud' });
    await waitFor(async () => (await json(`/api/sync?study=${studyUid}`)).body[0].numLocalInstances === 3, () => 'all three fetched', 30_000);
    assert.equal((await json(`/api/sync?study=${studyUid}`)).body[0].location, 'both');
    const again = await json(`/api/studies/${studyUid}/retrieve`, { method: 'POST', body: '{}' });
    assert.deepEqual([again.status, again.body], [200, { studyUid, fetching: false, location: 'both' }]);
  });

  test('/api/info says the archive is offline when a read cannot reach it, and online when a read gets an answer', async () => {
    // No forwarding to the archive here: only reads can tell.
    const upstream = new URL(orthanc.dicomWebUrl);
    let gate = await startGateProxy(upstream.origin);
    const port = Number(new URL(gate.origin).port);
    const reader = await startWebAppliance({ settings: { destinations: [{ name: 'orthanc', baseUrl: `${gate.origin}${upstream.pathname}`, archive: true }] } });
    const archive = async () => ((await (await reader.api('/api/info')).json()) as { archive: { state: string; lastError: string | null; since: number | null } }).archive;
    const qido = (query: string) => reader.api(`/dicom-web/studies?${query}&includecloud=true`, { headers: { accept: 'application/dicom+json' } });
    try {
      assert.equal((await qido('PatientID=READS-ONLINE')).status, 204);
      assert.equal((await archive()).state, 'online', 'a read got an answer');

      await gate.close(); // connections refused from now on
      const missing = await qido('PatientID=READS-OFFLINE');
      assert.match(missing.headers.get('warning') ?? '', /^299 /, 'the federated answer says the cloud part is missing');
      const offline = await archive();
      assert.equal(offline.state, 'offline');
      assert.match(offline.lastError ?? '', /ECONNREFUSED|unreachable/);

      gate = await startGateProxy(upstream.origin, port);
      assert.equal((await qido('PatientID=READS-BACK')).status, 204);
      const back = await archive();
      assert.deepEqual([back.state, back.lastError], ['online', null]);
      assert.ok(back.since! >= offline.since!, 'since it came back');
    } finally {
      await reader.stop();
      await gate.close();
    }
  });

  test('/api/info names the archive destination and its state; retrieve without an archive is a 409', async () => {
    const info = await json('/api/info');
    assert.equal(info.body.archive.name, 'orthanc');
    assert.ok(['online', 'idle', 'unknown'].includes(info.body.archive.state), info.body.archive.state);
    const plain = await startWebAppliance();
    try {
      const response = await plain.api('/api/studies/1.2.3.4/retrieve', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      assert.equal(response.status, 409);
      assert.match(((await response.json()) as { error: string }).error, /no archive destination/);
      assert.equal(((await (await plain.api('/api/info')).json()) as { archive: unknown }).archive, null);
    } finally {
      await plain.stop();
    }
  });
});
