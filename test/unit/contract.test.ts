// The wire contract's own pieces: the one-line settings problems read back, the masked settings, live events.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { maskedSettingsSchema, SECRET_MASK } from '../../main/core/contract/api/settings.js';
import { parseLiveEvent } from '../../main/core/contract/events.js';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { describeIssues, fieldProblems, parseProblemLine } from '../../main/core/contract/settings-problems.js';

test('a problem line reads back as the field and message the window shows, whatever the value holds', () => {
  const draft = {
    aeTitle: 'A:B: C\\D',
    dimse: { port: 70000 },
    peers: [{ aeTitle: 'WS', host: '', port: 104 }],
    destinations: [{ name: 'x', baseUrl: 'ftp://files.example: 21/', route: { callingAes: ['TOO_LONG_FOR_AN_AE_TITLE'] } }],
    storage: { maxArchiveBytes: { gb: 'a: b' } },
  };
  const result = settingsSchema.safeParse(draft);
  assert.ok(!result.success);
  const lines = describeIssues(result.error, draft);
  assert.deepEqual(lines.map(parseProblemLine), fieldProblems(result.error));
  assert.ok(fieldProblems(result.error).some((p) => p.path === 'dimse.port' && p.message === 'must be a whole number from 1 to 65535'));
  assert.ok(fieldProblems(result.error).some((p) => p.path === 'peers.0.host' && p.message === 'is required'));
  assert.deepEqual(parseProblemLine('field "(root)" has value missing: Invalid input'), { path: '', message: 'Invalid input' });
  assert.deepEqual(parseProblemLine('the settings changed since revision x'), { path: '', message: 'the settings changed since revision x' });
});

test('the masked settings accept the mask where a secret was, and nothing else there', () => {
  const stored = settingsSchema.parse({
    http: { apiToken: 'secret-token', basicAuth: { user: 'tech', passwordHash: 'scrypt$abc' } },
    destinations: [{ name: 'cloud', baseUrl: 'https://dicom.example/v2', auth: { kind: 'bearer', token: 'abc' } }],
  });
  const masked = { ...stored, http: { ...stored.http, apiToken: SECRET_MASK, basicAuth: { user: 'tech', passwordHash: SECRET_MASK } } };
  assert.ok(maskedSettingsSchema.safeParse(masked).success);
  assert.ok(!settingsSchema.safeParse(masked).success, 'the stored form keeps its own rule for the hash');
  assert.ok(!maskedSettingsSchema.safeParse(stored).success, 'a clear password hash is never part of the masked form');
});

test('live events are held to their schema', () => {
  const event = parseLiveEvent('outbox-changed', { studyUid: '1.2', destination: 'cloud', sopInstanceUids: ['1.2.3'], state: 'delivered' });
  assert.equal(event.type, 'outbox-changed');
  assert.throws(() => parseLiveEvent('outbox-changed', { studyUid: '1.2', destination: 'cloud', sopInstanceUids: ['1.2.3'], state: 'done' }), /state/);
});
