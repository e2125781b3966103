import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classifyNetworkError, classifyStow, FORBIDDEN_MESSAGE, type InstanceOutcome } from '../../main/core/forward/classify.js';
import { parseStowResponse } from '../../main/core/forward/stow-response.js';

const a = { sopInstanceUid: '1.2.3.1', replacesEarlier: false };
const b = { sopInstanceUid: '1.2.3.2', replacesEarlier: true };

function ref(uid: string, warning?: number) {
  return { '00081155': { vr: 'UI', Value: [uid] }, '00081150': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
    ...(warning === undefined ? {} : { '00081196': { vr: 'US', Value: [warning] } }) };
}
function fail(uid: string, reason: number) {
  return { '00081155': { vr: 'UI', Value: [uid] }, '00081197': { vr: 'US', Value: [reason] } };
}
function body(referenced: object[], failed: object[] = []) {
  return parseStowResponse(JSON.stringify({
    ...(referenced.length ? { '00081199': { vr: 'SQ', Value: referenced } } : {}),
    ...(failed.length ? { '00081198': { vr: 'SQ', Value: failed } } : {}),
  }));
}
function outcomes(verdict: ReturnType<typeof classifyStow>): Record<string, InstanceOutcome> {
  assert.equal(verdict.kind, 'per-instance');
  return Object.fromEntries((verdict as { outcomes: Map<string, InstanceOutcome> }).outcomes);
}

describe('forward STOW classification', () => {
  it('200 with every instance referenced: all delivered', () => {
    const o = outcomes(classifyStow({ status: 200, body: body([ref(a.sopInstanceUid), ref(b.sopInstanceUid)]) }, [a, b], { upsert: false }));
    assert.deepEqual(o, { [a.sopInstanceUid]: { kind: 'delivered' }, [b.sopInstanceUid]: { kind: 'delivered' } });
  });

  it('an instance the body does not mention is retried, never delivered on the status alone', () => {
    const o = outcomes(classifyStow({ status: 200, body: body([ref(a.sopInstanceUid)]) }, [a, b], { upsert: false }));
    assert.equal(o[b.sopInstanceUid]!.kind, 'retry');
    const none = classifyStow({ status: 200, body: undefined }, [a], { upsert: false });
    assert.equal(none.kind, 'transient');
  });

  it('202: referenced delivered with warnings kept, failed by reason', () => {
    const o = outcomes(classifyStow({ status: 202, body: body([ref(a.sopInstanceUid, 45063)], [fail(b.sopInstanceUid, 43264)]) }, [a, b], { upsert: false }));
    assert.deepEqual(o[a.sopInstanceUid], { kind: 'delivered', warningReason: 45063 });
    assert.equal(o[b.sopInstanceUid]!.kind, 'failed');
    assert.equal((o[b.sopInstanceUid] as { failureReason: number }).failureReason, 43264);
  });

  it('409 with 45070: delivered for a first copy; conflict or PUT for a replaced one', () => {
    const answer = { status: 409, body: body([], [fail(a.sopInstanceUid, 45070), fail(b.sopInstanceUid, 45070)]) };
    const off = outcomes(classifyStow(answer, [a, b], { upsert: false }));
    assert.deepEqual(off[a.sopInstanceUid], { kind: 'delivered' });
    assert.equal(off[b.sopInstanceUid]!.kind, 'conflict');
    const on = outcomes(classifyStow(answer, [a, b], { upsert: true }));
    assert.deepEqual(on[b.sopInstanceUid], { kind: 'resend-put' });
  });

  it('45071 is transient; 43264, 43265, 272 and others are permanent', () => {
    for (const [reason, kind] of [[45071, 'retry'], [43264, 'failed'], [43265, 'failed'], [272, 'failed'], [49152, 'failed'], [42752, 'retry']] as const) {
      const o = outcomes(classifyStow({ status: 409, body: body([], [fail(a.sopInstanceUid, reason)]) }, [a], { upsert: false }));
      assert.equal(o[a.sopInstanceUid]!.kind, kind, `reason ${reason}`);
      assert.equal((o[a.sopInstanceUid] as { failureReason: number }).failureReason, reason);
    }
  });

  it('401, 403 and 413 are request-level verdicts; 403 names the DICOM Data Owner role', () => {
    assert.equal(classifyStow({ status: 401, body: undefined }, [a], { upsert: false }).kind, 'unauthorized');
    const forbidden = classifyStow({ status: 403, body: undefined }, [a], { upsert: false });
    assert.deepEqual(forbidden, { kind: 'forbidden', message: FORBIDDEN_MESSAGE });
    assert.match(FORBIDDEN_MESSAGE, /DICOM Data Owner/);
    assert.equal(classifyStow({ status: 413, body: undefined }, [a], { upsert: false }).kind, 'too-large');
  });

  it('408, 424, 429 and 5xx are transient and carry Retry-After', () => {
    for (const status of [408, 424, 429, 500, 502, 503, 504]) {
      const verdict = classifyStow({ status, body: undefined, retryAfterMs: 5000 }, [a], { upsert: false });
      assert.equal(verdict.kind, 'transient', `HTTP ${status}`);
      assert.equal((verdict as { retryAfterMs?: number }).retryAfterMs, 5000);
    }
  });

  it('network errors are transient and name their code', () => {
    const error = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    assert.deepEqual(classifyNetworkError(error), { kind: 'transient', message: 'ECONNRESET: socket hang up' });
  });
});

describe('forward STOW response parser', () => {
  it('reads referenced and failed sequences, reasons as numbers or strings', () => {
    const parsed = parseStowResponse(JSON.stringify({
      '00081199': { vr: 'SQ', Value: [ref('1.1', 45063)] },
      '00081198': { vr: 'SQ', Value: [{ '00081155': { vr: 'UI', Value: ['1.2'] }, '00081197': { vr: 'US', Value: ['43265'] } }] },
    }));
    assert.deepEqual(parsed, { referenced: [{ sopInstanceUid: '1.1', warningReason: 45063 }], failed: [{ sopInstanceUid: '1.2', failureReason: 43265 }] });
  });

  it('returns undefined for empty, HTML or unrelated bodies', () => {
    assert.equal(parseStowResponse(''), undefined);
    assert.equal(parseStowResponse('<html>bad gateway</html>'), undefined);
    assert.equal(parseStowResponse('{"error":"x"}'), undefined);
  });
});
