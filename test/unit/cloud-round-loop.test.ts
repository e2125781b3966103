// The rounds of a background task (cloud/round-loop.ts) that the loop runs itself: a failure is counted for the
// task's backoff and told with whether it opens an outage or gives a new reason; the first success after failures
// is told once, with how many failed; a round cut by stop() is no failure. CloudSync and CloudWorklistService
// state only what they log of these (test/integration/cloud-sync.test.ts, cloud-worklist.test.ts).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RoundLoop, type RoundFailure } from '../../main/core/cloud/round-loop.js';

/** A loop whose next round fails with `outcomes`' next message, or succeeds on `'ok'`, and what it told. */
function scripted(outcomes: string[]) {
  const failed: Array<Omit<RoundFailure, 'error'> & { failures: number }> = [];
  const resumed: Array<{ failures: number; offlineMs: number }> = [];
  const loop: RoundLoop<string> = new RoundLoop({
    round: async () => {
      const next = outcomes.shift();
      if (next === undefined) throw new Error('no round scripted');
      if (next !== 'ok') throw new Error(next);
      return next;
    },
    reports: {
      failed: ({ error, ...failure }) => {
        assert.ok(error instanceof Error);
        failed.push({ ...failure, failures: loop.failures });
      },
      resumed: (outage) => resumed.push(outage),
    },
    nextDelay: () => 3_600_000,
    stopReason: 'test loop stopped',
  });
  return { loop, failed, resumed };
}

describe('a round loop that reports its rounds', () => {
  test('each failure counted and told (first of the outage, new reason), the recovery told once, then the count starts again', async () => {
    const { loop, failed, resumed } = scripted(['offline', 'offline', 'refused', 'ok', 'ok', 'offline']);
    for (let i = 0; i < 3; i++) assert.equal(await loop.reportedRound(), undefined);
    assert.deepEqual(failed, [
      { reason: 'offline', first: true, newReason: true, failures: 1 },
      { reason: 'offline', first: false, newReason: false, failures: 2 },
      { reason: 'refused', first: false, newReason: true, failures: 3 },
    ]);
    assert.equal(loop.failures, 3);
    assert.equal(await loop.reportedRound(), 'ok');
    assert.equal(resumed.length, 1);
    assert.equal(resumed[0]!.failures, 3);
    assert.ok(resumed[0]!.offlineMs >= 0);
    assert.equal(loop.failures, 0);
    assert.equal(await loop.reportedRound(), 'ok');
    assert.equal(resumed.length, 1, 'a success after a success tells nothing');
    assert.equal(await loop.reportedRound(), undefined);
    assert.deepEqual(failed.at(-1), { reason: 'offline', first: true, newReason: true, failures: 1 }, 'a new outage, its reason new again');
  });

  test('start() runs the rounds as reported ones; a round cut by stop() is no failure', async () => {
    let rounds = 0;
    let release: (error: Error) => void = () => undefined;
    let secondStarted: () => void = () => undefined;
    const second = new Promise<void>((resolve) => { secondStarted = resolve; });
    const told: string[] = [];
    const loop: RoundLoop<string> = new RoundLoop({
      round: () => {
        rounds++;
        if (rounds === 1) return Promise.reject(new Error('offline'));
        secondStarted();
        return new Promise<string>((_resolve, reject) => { release = reject; });
      },
      reports: { failed: ({ reason }) => told.push(reason), resumed: () => assert.fail('nothing recovered') },
      nextDelay: () => (rounds === 1 ? 0 : 3_600_000),
      stopReason: 'test loop stopped',
    });
    loop.start();
    await second;
    assert.deepEqual(told, ['offline'], 'the first scheduled round failed, and was told');
    assert.equal(loop.failures, 1);
    const stopped = loop.stop();
    release(loop.signal.reason as Error);
    await stopped;
    // The tick's own handling of the cut round runs before stop() resolves; one more turn to be sure.
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(told, ['offline']);
    assert.equal(loop.failures, 1);
  });
});
