// A destination named by a host name that resolves to a cloud metadata or link-local address is refused at
// connect time, by both kinds of connection the Egress hands out (undici for forwarding and sign-in,
// node:http agents for archive reads); a name that resolves to an ordinary address still works. The
// resolver is stood in for with node:test's mock, since this machine's DNS cannot be pointed anywhere.
import assert from 'node:assert/strict';
import dns, { type LookupAddress } from 'node:dns';
import { createServer, get, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import { request } from 'undici';
import { FORBIDDEN_ADDRESS_CODE } from '../../main/core/network/address-guard.js';
import { Egress } from '../../main/core/network/egress.js';

const NAMES: Record<string, LookupAddress[]> = {
  'imds-alias.test': [{ address: '169.254.169.254', family: 4 }],
  'mixed.test': [{ address: '127.0.0.1', family: 4 }, { address: 'fe80::1', family: 6 }],
  'upstream.test': [{ address: '127.0.0.1', family: 4 }],
};

function standInResolver(): void {
  const real = dns.lookup;
  mock.method(dns, 'lookup', (hostname: string, options: unknown, callback: (...args: unknown[]) => void) => {
    const known = NAMES[hostname];
    if (!known) return (real as (...args: unknown[]) => void)(hostname, options, callback);
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
    if (all) return process.nextTick(callback, null, known);
    return process.nextTick(callback, null, known[0]!.address, known[0]!.family);
  });
}

function nodeGet(url: string, egress: Egress): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent: egress.httpAgent(url, {}) }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    }).on('error', reject);
  });
}

describe('connect-time refusal of forbidden addresses behind host names', () => {
  let server: Server;
  let port = 0;
  let served = 0;
  const egress = Egress.fromEnvironment({});

  before(async () => {
    server = createServer((_req, res) => {
      served += 1;
      res.end('ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    standInResolver();
  });
  afterEach(() => {
    served = 0;
  });
  after(async () => {
    mock.restoreAll();
    await new Promise((resolve) => server.close(resolve));
  });

  it('undici dispatcher: a name resolving to 169.254.169.254 is refused, naming the name and the address', async () => {
    const url = `http://imds-alias.test:${port}/`;
    await assert.rejects(
      request(url, { dispatcher: egress.dispatcher(url, { connections: 1, timeoutMs: 5_000 }) }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, FORBIDDEN_ADDRESS_CODE);
        assert.match(error.message, /imds-alias\.test resolves to 169\.254\.169\.254/);
        return true;
      },
    );
  });

  it('undici dispatcher: one forbidden address among the answers refuses the name', async () => {
    const url = `http://mixed.test:${port}/`;
    await assert.rejects(request(url, { dispatcher: egress.dispatcher(url, { connections: 1, timeoutMs: 5_000 }) }),
      (error: Error & { code?: string }) => error.code === FORBIDDEN_ADDRESS_CODE && /fe80::1/.test(error.message));
    assert.equal(served, 0);
  });

  it('undici dispatcher: an ordinary name still connects', async () => {
    const url = `http://upstream.test:${port}/`;
    const answer = await request(url, { dispatcher: egress.dispatcher(url, { connections: 1, timeoutMs: 5_000 }) });
    assert.equal(answer.statusCode, 200);
    assert.equal(await answer.body.text(), 'ok');
    assert.equal(served, 1);
  });

  it('node:http agent: refused for the forbidden name, connects for the ordinary one', async () => {
    await assert.rejects(nodeGet(`http://imds-alias.test:${port}/`, egress),
      (error: Error & { code?: string }) => error.code === FORBIDDEN_ADDRESS_CODE);
    assert.equal(await nodeGet(`http://upstream.test:${port}/`, egress), 200);
    assert.equal(served, 1);
  });
});
