// The archive's offline state as the app sees it (cloud/archive-reachability.ts): reads tell whether it can be
// reached, and /api/info shows whichever of reads and forwarding learned something last.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ArchiveReachability, archiveState } from '../../main/core/cloud/archive-reachability.js';

describe('the archive\'s state from reads and forwarding', () => {
  test('reads turn it offline and online again; since moves only when it turns', () => {
    let now = 1_000;
    const turns: string[] = [];
    const reach = new ArchiveReachability((s) => turns.push(s.state), () => now);
    const state = () => reach.state; // read afresh: each call may change it
    assert.equal(state(), undefined);
    reach.answered();
    now = 2_000;
    reach.answered();
    assert.deepEqual(state(), { state: 'online', since: 1_000, lastError: null, checkedAt: 2_000 });
    now = 3_000;
    reach.unreachable('connect ECONNREFUSED');
    now = 4_000;
    reach.unreachable('no answer within 3000 ms');
    assert.deepEqual(state(), { state: 'offline', since: 3_000, lastError: 'no answer within 3000 ms', checkedAt: 4_000 });
    now = 5_000;
    reach.answered();
    assert.deepEqual(turns, ['online', 'offline', 'online']);
    assert.equal(state()?.since, 5_000);
  });

  test('whichever learned last wins; states about the account stay forwarding\'s', () => {
    const offlineRead = { state: 'offline' as const, since: 100, lastError: 'refused', checkedAt: 200 };
    assert.deepEqual(archiveState({ state: 'online', since: 50, lastError: null }, offlineRead), { state: 'offline', since: 100, lastError: 'refused' });
    assert.deepEqual(archiveState({ state: 'online', since: 300, lastError: null }, offlineRead), { state: 'online', since: 300, lastError: null });
    assert.deepEqual(archiveState({ state: 'unknown', since: null, lastError: null }, offlineRead), { state: 'offline', since: 100, lastError: 'refused' });
    assert.deepEqual(archiveState({ state: 'idle', since: 10, lastError: null }, offlineRead).state, 'offline');
    for (const state of ['paused', 'auth', 'forbidden'] as const) {
      assert.equal(archiveState({ state, since: 10, lastError: null }, offlineRead).state, state);
    }
    const onlineRead = { state: 'online' as const, since: 400, lastError: null, checkedAt: 500 };
    assert.deepEqual(archiveState({ state: 'offline', since: 450, lastError: 'reset' }, onlineRead), { state: 'online', since: 400, lastError: null });
    assert.deepEqual(archiveState({ state: 'offline', since: 600, lastError: 'reset' }, onlineRead).state, 'offline');
    assert.deepEqual(archiveState({ state: 'online', since: 1, lastError: null }, undefined), { state: 'online', since: 1, lastError: null });
  });
});
