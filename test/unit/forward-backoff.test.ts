import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelayMs, parseRetryAfter } from '../../main/core/forward/backoff.js';

const policy = { baseMs: 1000, capMs: 600_000 };

describe('forward backoff', () => {
  it('grows exponentially with full jitter and stays under the cap', () => {
    assert.equal(backoffDelayMs(1, policy, undefined, () => 0.999999), 999);
    assert.equal(backoffDelayMs(4, policy, undefined, () => 0.5), 4000);
    assert.equal(backoffDelayMs(50, policy, undefined, () => 0.999999), 599_999);
    assert.equal(backoffDelayMs(3, policy, undefined, () => 0), 0);
  });

  it('never comes back before Retry-After', () => {
    assert.equal(backoffDelayMs(1, policy, 30_000, () => 0.1), 30_000);
    assert.equal(backoffDelayMs(20, policy, 1000, () => 0.5), 300_000);
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('7'), 7000);
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter(undefined), undefined);
    assert.equal(parseRetryAfter('soon'), undefined);
  });
});
