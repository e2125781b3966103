// The route walk: every /api route of a running appliance is in the wire contract, declares the contract's
// schemas, and answers a real request with a body that fits its schema exactly. A route added without a
// contract entry, or without a request here, fails; so does an answer that drifts from the contract.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { z } from 'zod';
import { errorBodySchema } from '../../main/core/contract/api/common.js';
import { API_ROUTES, type ApiRoute } from '../../main/core/contract/api/routes.js';
import { isLiveEventName, liveEventSchemas } from '../../main/core/contract/events.js';
import type { WebService } from '../../main/core/web/web-service.js';
import { AzureDicomDouble } from '../doubles/azure-dicom.js';
import { EntraDouble } from '../doubles/entra.js';
import { storescu } from '../e2e/ui-harness.js';
import { waitFor } from '../support/forward-harness.js';
import { startStorescp, type StorescpPeer } from '../support/storescp.js';
import { makeStudy, type GeneratedInstance } from '../support/study.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

type Json = any;

describe('/api and its wire contract', { timeout: 120_000 }, () => {
  let entra: EntraDouble;
  let azure: AzureDicomDouble;
  let w: WebAppliance;
  let dir: string;
  let workstation: StorescpPeer;
  let study: GeneratedInstance[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'api-contract-'));
    entra = await EntraDouble.start();
    entra.registerPublicClient('edge-technician');
    azure = await AzureDicomDouble.start();
    workstation = await startStorescp({ dir: join(dir, 'workstation'), aet: 'WORKSTATION' });
    w = await startWebAppliance({
      forward: {
        msal: () => ({
          auth: { knownAuthorities: entra.msalAuth('edge-technician').knownAuthorities, authorityMetadata: entra.authorityMetadata(), cloudDiscoveryMetadata: entra.cloudDiscoveryMetadata() },
          system: entra.msalSystem(),
        }),
      },
    });
  });
  after(async () => {
    await w?.stop();
    await workstation?.stop();
    await azure?.stop();
    await entra?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const call = async (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const response = await w.api(path, {
      method: init.method ?? 'GET',
      headers: { accept: 'application/json', ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, text, body: text ? (JSON.parse(text) as Json) : undefined };
  };

  /** The body fits the route's schema for its status, and carries nothing the schema does not declare. */
  const fits = (route: ApiRoute, answer: { status: number; body: Json }) => {
    const schema = (API_ROUTES[route].response as Partial<Record<number, z.ZodType>>)[answer.status];
    assert.ok(schema, `${route} answered ${answer.status}, which the contract does not list: ${JSON.stringify(answer.body)}`);
    const parsed = schema.safeParse(answer.body);
    assert.ok(parsed.success, `${route} answered off-contract: ${parsed.success ? '' : parsed.error.message}`);
    assert.deepEqual(parsed.data, answer.body, `${route} answers only what the contract declares`);
  };

  test('every /api route is in the contract, declares its schemas, and a real answer fits them', async () => {
    const web = w.appliance.services.find((s) => s.name === 'http') as WebService;
    const routes = web.routes.filter((r) => r.url.startsWith('/api') && r.method !== 'HEAD');
    const keys = routes.map((r) => `${r.method} ${r.url}`);
    assert.deepEqual(keys.filter((k) => !(k in API_ROUTES)), [], 'routes without a contract entry');
    assert.deepEqual(Object.keys(API_ROUTES).filter((k) => !keys.includes(k)), [], 'contract entries without a route');
    for (const route of routes) {
      const contract = API_ROUTES[`${route.method} ${route.url}` as ApiRoute];
      if ('events' in contract) continue; // a stream, walked below
      for (const part of ['params', 'querystring', 'body'] as const) {
        assert.equal(route.schema?.[part], (contract as Partial<Record<typeof part, z.ZodType>>)[part], `${route.method} ${route.url} declares the contract's ${part}`);
      }
      for (const [status, schema] of Object.entries(contract.response)) {
        assert.equal((route.schema?.response as Record<string, unknown> | undefined)?.[status], schema, `${route.method} ${route.url} declares the contract's ${status} answer`);
      }
    }

    // The live events of the whole walk, checked at the end.
    const events = await openEventStream(w);

    // Something to answer about: a study from storescu, two destinations (one with device-code sign-in),
    // and one instance the Azure double refuses, so there is a real failure.
    const put = async (destinations: unknown[]) => {
      const current = await call('/api/settings');
      fits('GET /api/settings', current);
      const written = await call('/api/settings', { method: 'PUT', body: { ...current.body, destinations }, headers: { 'if-match': current.headers.get('etag')! } });
      fits('PUT /api/settings', written);
      return written;
    };
    await put([
      // The archive too: the study's retrieve answers that it is all here already.
      { name: 'cloud', baseUrl: azure.baseUrl, retryBaseMs: 50, retryCapMs: 400, archive: true },
      { name: 'signin', baseUrl: azure.baseUrl, enabled: false,
        auth: { kind: 'entra-device-code', tenantId: entra.tenantId, clientId: 'edge-technician', authority: entra.authority } },
    ]);
    study = makeStudy({ series: 1, instancesPerSeries: 3, patientName: 'CONTRACT^WALK' });
    const studyUid = study[0]!.studyUid;
    await azure.setFault({ kind: 'reject-instance', sopUids: [study[1]!.sopInstanceUid], reason: 43264 });
    await storescu(w, study);
    await waitFor(async () => (await call('/api/failures')).body.total === 1, () => 'one failure', 30_000);
    await azure.clearFault();
    const failureId = (await call('/api/failures')).body.items[0].id as number;

    const worklistItem = { patientName: 'CONTRACT^WALK', patientId: 'P-WALK', scheduledStartDate: '20260115', modality: 'CT', scheduledStationAeTitle: 'CT1' };
    const scheduled = async () => (await call('/api/worklist', { method: 'POST', body: worklistItem })).body.id as number;
    const requests: Record<ApiRoute, () => Promise<{ status: number; body: Json }>> = {
      'GET /api/health': () => call('/api/health'),
      'GET /api/ready': () => call('/api/ready'),
      'GET /api/info': () => call('/api/info'),
      'GET /api/outbox': () => call('/api/outbox'),
      'GET /api/sync': () => call(`/api/sync?study=${studyUid}`),
      'GET /api/studies/:study/sync': () => call(`/api/studies/${studyUid}/sync?limit=2`),
      'POST /api/studies/:study/retry': () => call(`/api/studies/${studyUid}/retry?destination=cloud`, { method: 'POST', body: {} }),
      'POST /api/studies/:study/cancel': () => call(`/api/studies/${studyUid}/cancel?destination=signin`, { method: 'POST', body: {} }),
      'POST /api/studies/:study/overwrite': () => call(`/api/studies/${studyUid}/overwrite`, { method: 'POST', body: {} }),
      'GET /api/failures': () => call('/api/failures?limit=10'),
      'GET /api/failures/:id': () => call(`/api/failures/${failureId}`),
      'POST /api/failures/:id/retry': () => call(`/api/failures/${failureId}/retry`, { method: 'POST', body: {} }),
      'POST /api/failures/:id/cancel': () => call(`/api/failures/${failureId}/cancel`, { method: 'POST', body: {} }),
      'POST /api/failures/:id/overwrite': () => call(`/api/failures/${failureId}/overwrite`, { method: 'POST', body: {} }),
      'GET /api/destinations': () => call('/api/destinations'),
      'POST /api/destinations/:name/pause': () => call('/api/destinations/cloud/pause', { method: 'POST', body: {} }),
      'POST /api/destinations/:name/resume': () => call('/api/destinations/cloud/resume', { method: 'POST', body: {} }),
      'POST /api/destinations/:name/retry': () => call('/api/destinations/cloud/retry', { method: 'POST', body: {} }),
      'POST /api/destinations/:name/cancel': () => call('/api/destinations/signin/cancel', { method: 'POST', body: {} }),
      'POST /api/destinations/:name/test': () => call('/api/destinations/cloud/test', { method: 'POST', body: {} }),
      'POST /api/destinations/:name/sign-in': () => call('/api/destinations/signin/sign-in', { method: 'POST', body: {} }),
      'GET /api/destinations/:name/sign-in': () => call('/api/destinations/signin/sign-in'),
      'GET /api/settings': () => call('/api/settings'),
      'PUT /api/settings': async () => {
        const current = await call('/api/settings');
        return call('/api/settings', { method: 'PUT', body: current.body });
      },
      'POST /api/peers/echo': () => call('/api/peers/echo', { method: 'POST', body: { aeTitle: 'WORKSTATION', host: '127.0.0.1', port: workstation.port } }),
      'GET /api/commitments': () => call('/api/commitments'),
      'GET /api/worklist': () => call('/api/worklist?state=SCHEDULED'),
      'POST /api/worklist': () => call('/api/worklist', { method: 'POST', body: worklistItem }),
      'PUT /api/worklist/:id': async () => call(`/api/worklist/${await scheduled()}`, { method: 'PUT', body: { ...worklistItem, modality: 'MR' } }),
      'DELETE /api/worklist/:id': async () => call(`/api/worklist/${await scheduled()}`, { method: 'DELETE' }),
      'POST /api/studies/:study/pin': () => call(`/api/studies/${studyUid}/pin`, { method: 'POST', body: {} }),
      'DELETE /api/studies/:study/pin': () => call(`/api/studies/${studyUid}/pin`, { method: 'DELETE' }),
      'GET /api/prefetch': () => call('/api/prefetch?limit=10'),
      'POST /api/studies/:study/retrieve': () => call(`/api/studies/${studyUid}/retrieve`, { method: 'POST', body: {} }),
      'GET /api/events': async () => ({ status: 200, body: undefined }),
      'GET /api/session': () => call('/api/session'),
    };
    for (const key of keys as ApiRoute[]) {
      const contract = API_ROUTES[key];
      if ('events' in contract) continue;
      const answer = await requests[key]();
      assert.ok(answer.status < 300, `${key} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      if (answer.status === 204) assert.equal(answer.body, undefined, `${key}: 204 without a body`);
      else fits(key, answer);
    }
    // The echo reached the real storescp; the sign-in is waiting for the technician, who signs in.
    assert.equal((await call('/api/peers/echo', { method: 'POST', body: { aeTitle: 'WORKSTATION', host: '127.0.0.1', port: workstation.port } })).body.ok, true);
    entra.approveDeviceCode((await entra.waitForDeviceCode()).userCode);
    await waitFor(async () => (await call('/api/destinations/signin/sign-in')).body.state === 'signed-in', () => 'signed in', 15_000);

    // Every event the walk caused fits its schema; the kinds a technician's window lives on all came by.
    await waitFor(() => events.seen.has('destination-status'), () => 'a destination status event', 15_000);
    events.close();
    for (const event of events.all) {
      assert.ok(isLiveEventName(event.type), `unknown event ${event.type}`);
      const parsed = liveEventSchemas[event.type as keyof typeof liveEventSchemas].safeParse(event.data);
      assert.ok(parsed.success, `${event.type} off-contract: ${JSON.stringify(event.data)}`);
      assert.deepEqual(parsed.data, event.data, `${event.type} carries only what the contract declares`);
    }
    for (const type of ['hello', 'instance-stored', 'study-updated', 'outbox-changed', 'destination-status']) assert.ok(events.seen.has(type), type);
  });

  test('errors answer the error body, and a request off the contract is refused naming the parameter', async () => {
    const studyUid = '1.2.826.0.1.3680043.10.1';
    const refusals: Array<[string, { method?: string; body?: unknown }, number, RegExp]> = [
      [`/api/studies/${studyUid}/sync?limit=0`, {}, 400, /^limit must be an integer from 1 to 5000$/],
      [`/api/studies/${studyUid}/sync?offset=x`, {}, 400, /^offset must be an integer from 0 to/],
      ['/api/studies/1.02/sync', {}, 400, /^StudyInstanceUID "1\.02" in the path is not a dotted sequence/],
      ['/api/studies/1.2.3.4/sync', {}, 404, /no study 1\.2\.3\.4/],
      ['/api/sync?study=1.2,x', {}, 400, /^StudyInstanceUID "x" in the path contains characters other than digits and dots$/],
      ['/api/failures?limit=1001', {}, 400, /^limit must be an integer from 1 to 1000$/],
      ['/api/failures/0', {}, 400, /^outbox entry id must be a positive integer$/],
      ['/api/failures/abc/retry', { method: 'POST', body: {} }, 400, /^outbox entry id must be a positive integer$/],
      ['/api/failures/99999', {}, 404, /no outbox entry 99999/],
      ['/api/destinations/nosuch/pause', { method: 'POST', body: {} }, 404, /no destination "nosuch"/],
      ['/api/peers/echo', { method: 'POST', body: [1] }, 400, /body must be a JSON object/],
      ['/api/peers/echo', { method: 'POST', body: { aeTitle: 5 } }, 400, /^aeTitle \(a string\) is required$/],
      ['/api/settings', { method: 'PUT', body: [] }, 400, /settings must be a JSON object/],
    ];
    for (const [path, init, status, message] of refusals) {
      const answer = await call(path, init);
      assert.equal(answer.status, status, `${path}: ${answer.text}`);
      const parsed = errorBodySchema.safeParse(answer.body);
      assert.ok(parsed.success, `${path} answers the error body: ${answer.text}`);
      assert.equal(parsed.data.status, status);
      assert.match(parsed.data.error, message, path);
    }
  });
});

/** Reads /api/events in the background, keeping every event. */
async function openEventStream(w: WebAppliance): Promise<{ all: Array<{ type: string; data: unknown }>; seen: Set<string>; close(): void }> {
  const controller = new AbortController();
  const response = await w.api('/api/events', { headers: { accept: 'text/event-stream' }, signal: controller.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
  const all: Array<{ type: string; data: unknown }> = [];
  const seen = new Set<string>();
  void (async () => {
    let buffer = '';
    try {
      for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type && data) {
            all.push({ type, data: JSON.parse(data) });
            seen.add(type);
          }
        }
      }
    } catch {
      /* aborted at the end of the walk */
    }
  })();
  await waitFor(() => seen.has('hello'), () => 'the stream says hello', 10_000);
  return { all, seen, close: () => controller.abort() };
}
