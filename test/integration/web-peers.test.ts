// POST /api/peers/echo: a C-ECHO from the appliance (our AE title calling) to a real DCMTK storescp.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, startStorescp, type StorescpPeer } from '../support/peers.js';
import { startWebAppliance, type WebAppliance } from '../support/web-appliance.js';

describe('C-ECHO to peers over /api/peers/echo', { timeout: 60_000 }, () => {
  let w: WebAppliance;
  let storescp: StorescpPeer;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'echo-peer-'));
    storescp = await startStorescp({ dir, aet: 'ECHOSCP' });
    w = await startWebAppliance();
  });
  after(async () => {
    await w?.stop();
    await storescp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const echo = async (body: unknown) => {
    const response = await w.api('/api/peers/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  test('an ad-hoc peer (storescp) answers with success', async () => {
    const { status, body } = await echo({ aeTitle: 'ECHOSCP', host: '127.0.0.1', port: storescp.port });
    assert.equal(status, 200);
    assert.equal(body.ok, true, JSON.stringify(body));
    assert.equal(body.status, 0);
    assert.equal(body.error, null);
    assert.equal(typeof body.ms, 'number');
  });

  test('a configured peer is found by its AE title', async () => {
    const settings = (await (await w.api('/api/settings')).json()) as Record<string, unknown>;
    settings.peers = [{ aeTitle: 'ECHOSCP', host: '127.0.0.1', port: storescp.port, description: 'DCMTK storescp' }];
    const put = await w.api('/api/settings', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(settings) });
    assert.equal(put.status, 200, await put.text());
    const { status, body } = await echo({ aeTitle: 'ECHOSCP' });
    assert.equal(status, 200);
    assert.equal(body.ok, true, JSON.stringify(body));
    const unknown = await echo({ aeTitle: 'NOBODY' });
    assert.equal(unknown.status, 404);
    assert.match(String(unknown.body.error), /no configured peer with AE title "NOBODY"/);
  });

  test('a closed port gives a clear error, not a hang', async () => {
    const port = await freePort();
    const { status, body } = await echo({ aeTitle: 'CLOSED', host: '127.0.0.1', port });
    assert.equal(status, 200);
    assert.equal(body.ok, false);
    assert.equal(body.status, null);
    assert.match(String(body.error), new RegExp(`connection refused at 127\\.0\\.0\\.1:${port}`));
  });

  test('a peer that rejects the association says why', async () => {
    // Our own DIMSE listener only accepts its own called AE title.
    const { body } = await echo({ aeTitle: 'NOT-US', host: '127.0.0.1', port: w.dimsePort });
    assert.equal(body.ok, false);
    assert.match(String(body.error), /association rejected .*called AE title not recognized/);
    const ours = await echo({ aeTitle: 'DICOMEDGE', host: '127.0.0.1', port: w.dimsePort });
    assert.equal(ours.body.ok, true, JSON.stringify(ours.body));
  });

  test('an invalid ad-hoc peer is refused with the settings rules', async () => {
    const { status, body } = await echo({ aeTitle: 'THIS_AE_TITLE_IS_TOO_LONG', host: '127.0.0.1', port: 70000 });
    assert.equal(status, 400);
    assert.match(String(body.error), /field "aeTitle".*1 to 16 printable ASCII/);
    assert.match(String(body.error), /field "port" has value 70000/);
    assert.equal((await echo([1, 2])).status, 400);
  });
});
