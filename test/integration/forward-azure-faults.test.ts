// Store-and-forward against the Azure DICOM double, fault by fault. Each test ends with every instance
// delivered exactly once, judged by what the upstream holds.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { startForwarding, waitFor, type Forwarding } from '../support/forward-harness.js';
import { makeInstance } from '../support/instance.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { indexDb } from '../support/index-db.js';

const sha = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');
const small = { rows: 8, columns: 8 } as const;
const fast = { retryBaseMs: 50, retryCapMs: 400, requestTimeoutMs: 5_000 };

describe('forward to the Azure DICOM double: faults', () => {
  let azure: AzureDicomDouble;
  let fwd: Forwarding | undefined;

  before(async () => {
    azure = await AzureDicomDouble.start();
  });
  afterEach(async () => {
    await fwd?.close();
    fwd = undefined;
    await azure.clearFault();
    azure.reset();
  });
  after(() => azure.stop());

  async function forward(destination: Record<string, unknown> = {}) {
    fwd = await startForwarding({ destinations: [{ name: 'azure', baseUrl: azure.baseUrl, ...fast, ...destination }] });
    return fwd;
  }
  const status = () => fwd!.service.status()[0]!;
  const describeState = () => `status ${JSON.stringify(status())}; upstream holds ${azure.storedInstances().length}`;

  /** Every instance held upstream exactly once with our bytes, and delivered in the outbox. */
  async function deliveredExactlyOnce(instances: readonly GeneratedInstance[], timeoutMs = 30_000) {
    await waitFor(() => status().counts.delivered === instances.length, describeState, timeoutMs);
    for (const instance of instances) {
      const stored = azure.storedInstance(instance.sopInstanceUid);
      assert.ok(stored, `upstream holds ${instance.sopInstanceUid}`);
      assert.equal(sha(stored.bytes), sha(instance.buffer), 'identical bytes');
      assert.equal(azure.storeCount(instance.sopInstanceUid), 1, `${instance.sopInstanceUid} stored exactly once`);
    }
    assert.equal(azure.storedInstances().length, instances.length, 'nothing else upstream');
  }

  it('upstream down, then up: offline with since, one probe per interval honouring Retry-After, then all delivered', async () => {
    await azure.setFault({ kind: 'down', mode: 'refuse' });
    const f = await forward({ maxInstancesPerRequest: 5, maxConcurrentRequests: 4 });
    const study = makeStudy({ series: 2, instancesPerSeries: 10, ...small });
    const changes: string[] = [];
    f.archive.events.on('destination-status', (e) => changes.push(e.state));
    await f.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().state === 'offline', describeState);
    const offline = status();
    assert.ok(offline.since > 0 && offline.lastError, 'offline since when, and why');
    assert.equal(offline.counts.delivered, 0);

    // Overloaded rather than unreachable: 503 with Retry-After 1 s. Probes are single and spaced.
    await azure.setFault({ kind: 'status', status: 503, retryAfter: 1 });
    const before503 = azure.storeRequests().length;
    const windowStart = Date.now();
    await waitFor(() => Date.now() - windowStart > 2_500, () => '');
    const probes = azure.storeRequests().length - before503;
    assert.ok(probes >= 1 && probes <= 4, `a single probe per Retry-After interval, got ${probes} requests in 2.5 s`);
    assert.equal(status().state, 'offline');

    await azure.clearFault();
    await deliveredExactlyOnce(study);
    assert.equal(status().state, 'online');
    assert.deepEqual(changes.filter((s, i) => s !== changes[i - 1]), ['offline', 'online']);
  });

  it('a connection dropped mid-request: resent, delivered once', async () => {
    await azure.setFault({ kind: 'drop-mid-body', times: 3 });
    await forward({ maxInstancesPerRequest: 4, maxConcurrentRequests: 2 });
    const study = makeStudy({ series: 1, instancesPerSeries: 12, ...small });
    await fwd!.ingest(study.map((i) => i.buffer));
    await deliveredExactlyOnce(study);
    assert.ok(azure.storeRequests().some((r) => r.status === 'dropped'), 'the double did drop connections');
  });

  it('a response lost after the upstream stored: the resend gets 45070 and counts as delivered', async () => {
    await azure.setFault({ kind: 'drop-after-store', times: 2 });
    await forward({ maxInstancesPerRequest: 5, maxConcurrentRequests: 1 });
    const study = makeStudy({ series: 1, instancesPerSeries: 10, ...small });
    await fwd!.ingest(study.map((i) => i.buffer));
    await deliveredExactlyOnce(study);
    assert.ok(azure.storeRequests().length > 2, 'resent after the lost answers');
  });

  it('413: the request is split; a single instance still too large fails with its reason', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 9, ...small });
    const big = makeInstance({ studyUid: study[0]!.studyUid, rows: 128, columns: 128 });
    await azure.setFault({ kind: 'too-large', maxInstances: 2, maxBytes: 20_000 });
    await forward({ maxInstancesPerRequest: 9, maxConcurrentRequests: 1 });
    await fwd!.ingest(study.map((i) => i.buffer));
    await deliveredExactlyOnce(study);
    await fwd!.ingest([big]);
    await waitFor(() => status().counts.failed === 1, describeState);
    const row = indexDb(fwd!.archive).prepare("SELECT failure_reason, last_error FROM outbox WHERE state = 'failed'").get() as { failure_reason: number; last_error: string };
    assert.equal(row.failure_reason, 413);
    assert.match(row.last_error, /too large/);
  });

  it('a permanent failure is shown with its reason, and delivered when retried after the fix', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 6, ...small });
    const bad = study[2]!;
    await azure.setFault({ kind: 'reject-instance', sopUids: [bad.sopInstanceUid], reason: 43264 });
    await forward();
    await fwd!.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === 5 && status().counts.failed === 1, describeState);
    const progress = fwd!.service.progress({ studyUid: bad.studyUid })[0]!;
    assert.equal(progress.counts.failed, 1);
    const row = fwd!.archive.outbox.rowsFor(bad.sopInstanceUid)[0]!;
    assert.equal(row.failure_reason, 43264);
    assert.match(row.last_error ?? '', /validation/);
    // No retry until a user asks.
    const requests = azure.storeRequests().length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(azure.storeRequests().length, requests);
    await azure.clearFault();
    assert.equal(fwd!.service.retry({ sopInstanceUid: bad.sopInstanceUid }), 1);
    await deliveredExactlyOnce(study);
  });

  it('45071 is retried, 202 warnings are kept', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 4, ...small });
    await azure.setFault({ kind: 'transient-45071', sopUids: [study[0]!.sopInstanceUid], failures: 2 });
    await forward();
    await fwd!.ingest(study.slice(0, 2).map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === 2, describeState);
    await azure.setFault({ kind: 'warning', sopUids: [study[3]!.sopInstanceUid], reason: 45063 });
    await fwd!.ingest(study.slice(2).map((i) => i.buffer));
    await deliveredExactlyOnce(study);
    assert.equal(fwd!.archive.outbox.rowsFor(study[3]!.sopInstanceUid)[0]!.warning_reason, 45063);
    assert.equal(status().state, 'online');
  });

  it('45070 for a replaced instance: conflict with upsert off, then overwrite sends PUT', async () => {
    const uids = makeStudy({ series: 1, instancesPerSeries: 1, ...small })[0]!;
    const original = makeInstance({ studyUid: uids.studyUid, seriesUid: uids.seriesUid, sopInstanceUid: uids.sopInstanceUid, patientName: 'FIRST^COPY', ...small });
    const corrected = makeInstance({ studyUid: uids.studyUid, seriesUid: uids.seriesUid, sopInstanceUid: uids.sopInstanceUid, patientName: 'CORRECTED^COPY', ...small });
    await forward();
    await fwd!.ingest([original]);
    await waitFor(() => status().counts.delivered === 1, describeState);
    await fwd!.ingest([corrected]); // the local copy replaces the earlier one
    await waitFor(() => status().counts.conflict === 1, describeState);
    assert.equal(sha(azure.storedInstance(uids.sopInstanceUid)!.bytes), sha(original), 'not overwritten without asking');
    assert.equal(fwd!.service.overwrite({ sopInstanceUid: uids.sopInstanceUid }), 1);
    await waitFor(() => status().counts.delivered === 1, describeState);
    assert.equal(sha(azure.storedInstance(uids.sopInstanceUid)!.bytes), sha(corrected));
    assert.equal(azure.storeRequests().at(-1)!.method, 'PUT');
  });

  it('45070 for a replaced instance with upsert on: PUT at once', async () => {
    const uids = makeStudy({ series: 1, instancesPerSeries: 1, ...small })[0]!;
    const corrected = makeInstance({ studyUid: uids.studyUid, seriesUid: uids.seriesUid, sopInstanceUid: uids.sopInstanceUid, patientName: 'CORRECTED', ...small });
    await forward({ upsert: true });
    await fwd!.ingest([uids.buffer]);
    await waitFor(() => status().counts.delivered === 1, describeState);
    await fwd!.ingest([corrected]);
    await waitFor(() => sha(azure.storedInstance(uids.sopInstanceUid)!.bytes) === sha(corrected), describeState);
    await waitFor(() => status().counts.delivered === 1, describeState);
  });

  it('verification finds an instance missing upstream and sends it again', async () => {
    const study = makeStudy({ series: 1, instancesPerSeries: 5, ...small });
    await forward({ verifyAfterDelivery: true });
    await fwd!.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().counts.delivered === 5, describeState);
    const lost = study[1]!;
    const res = await fetch(`${azure.baseUrl}/studies/${lost.studyUid}/series/${lost.seriesUid}/instances/${lost.sopInstanceUid}`, { method: 'DELETE' });
    assert.equal(res.status, 204);
    await waitFor(() => azure.storedInstance(lost.sopInstanceUid), describeState, 15_000);
    assert.equal(azure.storedInstances().length, 5);
  });

  it('403: paused naming the DICOM Data Owner role; resumed after the fix', async () => {
    await azure.setFault({ kind: 'status', status: 403 });
    await forward();
    const study = makeStudy({ series: 1, instancesPerSeries: 3, ...small });
    await fwd!.ingest(study.map((i) => i.buffer));
    await waitFor(() => status().state === 'forbidden', describeState);
    assert.match(status().lastError ?? '', /DICOM Data Owner/);
    const requests = azure.storeRequests().length;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(azure.storeRequests().length, requests, 'no requests while forbidden');
    await azure.clearFault();
    fwd!.service.resume('azure');
    await deliveredExactlyOnce(study);
  });

  it('pause, cancel and resume; a new study is not starved by a backlog', async () => {
    await azure.setFault({ kind: 'delay', ms: 40 });
    await forward({ maxInstancesPerRequest: 2, maxConcurrentRequests: 1 });
    fwd!.service.pause('azure');
    assert.equal(status().state, 'paused');
    const backlog = makeStudy({ series: 1, instancesPerSeries: 40, ...small });
    await fwd!.ingest(backlog.map((i) => i.buffer));
    const cancelled = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
    await fwd!.ingest(cancelled.map((i) => i.buffer));
    assert.equal(fwd!.service.cancel({ studyUid: cancelled[0]!.studyUid }), 2);
    fwd!.service.resume('azure');
    await waitFor(() => azure.storedInstances().length >= 4, describeState);
    const urgent = makeStudy({ series: 1, instancesPerSeries: 2, ...small });
    await fwd!.ingest(urgent.map((i) => i.buffer));
    await waitFor(() => urgent.every((i) => azure.storedInstance(i.sopInstanceUid)), describeState);
    assert.ok(azure.storedInstances().length < 40, `the new study went before the backlog finished (${azure.storedInstances().length} stored)`);
    await waitFor(() => status().counts.delivered === 42, describeState);
    assert.equal(status().counts.cancelled, 2);
    assert.ok(cancelled.every((i) => !azure.storedInstance(i.sopInstanceUid)), 'cancelled instances were not sent');
  });
});
