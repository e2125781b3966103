// Prefetch of priors: the rules' choice (pure), and the queue over a real archive with a stand-in archive
// reader and fetch: planning on arrival, jobs through queued → fetching → done | failed, forwarding first,
// bounded concurrency, retries while the archive is offline, and restart.
import { indexDb } from '../support/index-db.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import pino from 'pino';
import { ArchiveReadError } from '../../main/core/cloud/archive-errors.js';
import type { QidoSearch } from '../../main/core/cloud/archive-reader.js';
import { Prefetcher, type FetchStudy } from '../../main/core/cloud/prefetch.js';
import { choosePriors } from '../../main/core/cloud/prefetch-plan.js';
import type { ReceivedDicomJson } from '../../main/core/dicom/dicom-json-values.js';
import { toDicomJson, type KeywordValue } from '../../main/core/dicom/dicom-json.js';
import { prefetchRuleSchema } from '../../main/core/contract/settings.js';
import { Archive } from '../../main/core/store/archive.js';
import type { PatientStudy, PrefetchState } from '../../main/core/store/prefetch-jobs.js';
import { waitFor } from '../support/forward-harness.js';
import { makeInstance } from '../support/instance.js';
import { newUid } from '../support/uid.js';

const rule = (r: Partial<{ modalities: string[]; maxStudies: number; maxAgeDays: number }>) => prefetchRuleSchema.parse(r);
const study = (studyUid: string, studyDate: string, modalities: string[], complete = false): PatientStudy => ({ studyUid, studyDate, studyTime: '', modalities, complete });

describe('choosing priors', () => {
  const today = new Date(2030, 5, 15);
  const studies = [
    study('1.1', '20300610', ['CT']),
    study('1.2', '20300101', ['MR']),
    study('1.3', '20290101', ['CT', 'SR']),
    study('1.4', '20200101', ['CT']),
    study('1.5', '', ['CT']),
    study('1.6', '20300614', ['CT']), // the arriving study
  ];
  const choose = (rules: ReturnType<typeof rule>[], from = studies) => choosePriors(rules, from, { exclude: new Set(['1.6']), today });

  test('the most recent studies first, at most maxStudies, never the arriving one', () => {
    assert.deepEqual(choose([rule({ maxStudies: 2 })]), ['1.1', '1.2']);
    assert.deepEqual(choose([rule({ maxStudies: 10, maxAgeDays: 36_500 })]), ['1.1', '1.2', '1.3', '1.4'], 'no date: cannot be aged, left out');
    assert.deepEqual(choose([rule({ maxStudies: 10 })]), ['1.1', '1.2', '1.3'], 'default maximum age: five years');
  });

  test('modalities (any of them, in any case) and maximum age', () => {
    assert.deepEqual(choose([rule({ modalities: ['ct'], maxStudies: 5, maxAgeDays: 36_500 })]), ['1.1', '1.3', '1.4']);
    assert.deepEqual(choose([rule({ modalities: ['CT'], maxStudies: 5, maxAgeDays: 730 })]), ['1.1', '1.3']);
    assert.deepEqual(choose([rule({ modalities: ['US'] })]), []);
  });

  test('priors already complete here count, but are not fetched; several rules give their union', () => {
    const withLocal = studies.map((s) => (s.studyUid === '1.1' ? { ...s, complete: true } : s));
    assert.deepEqual(choose([rule({ maxStudies: 2 })], withLocal), ['1.2'], 'the local one still counts as one of the two');
    assert.deepEqual(choose([rule({ modalities: ['MR'], maxStudies: 1 }), rule({ modalities: ['SR'], maxStudies: 1 })]), ['1.2', '1.3']);
  });
});

describe('the prefetch queue', () => {
  let dir: string;
  let archive: Archive;
  let prefetcher: Prefetcher;
  let cloudStudies: ReceivedDicomJson[];
  let searches: QidoSearch[];
  let fetches: string[];
  let fetchStudy: FetchStudy;
  let settings: { rules: ReturnType<typeof rule>[]; concurrency: number };
  let route: string[];
  const today = new Date(2030, 5, 15);
  const local = { callingAe: 'CT', peer: 'modality' };

  const reader = {
    name: 'azure',
    search: async (search: QidoSearch) => {
      searches.push(search);
      const id = search.match?.PatientID;
      return cloudStudies.filter((d) => (d['00100020']?.Value as string[] | undefined)?.[0] === id);
    },
  };
  const cloudStudy = (values: Record<string, KeywordValue>, issuer?: string): string => {
    const uid = newUid();
    cloudStudies.push({ ...toDicomJson({ StudyInstanceUID: uid, ...values }), ...(issuer ? { '00100021': { vr: 'LO', Value: [issuer] } } : {}) });
    return uid;
  };
  const stateOf = (uid: string): PrefetchState | undefined => archive.prefetch.get(uid)?.state;
  const arrive = async (patientId: string, extra: Record<string, unknown> = {}) => {
    const stored = await archive.ingest(Readable.from([makeInstance({ patientId, studyDate: '20300614', rows: 8, columns: 8, extra })]), local);
    return stored.header.studyInstanceUid;
  };
  const deliverAll = () => {
    const rows = indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE state = 'pending' RETURNING study_uid, sop_instance_uid").all() as Array<{ study_uid: string; sop_instance_uid: string }>;
    for (const r of rows) archive.events.emit('outbox-changed', { studyUid: r.study_uid, destination: 'azure', sopInstanceUids: [r.sop_instance_uid], state: 'delivered' });
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-prefetch-'));
    ({ archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }), route: () => route }));
  });
  beforeEach(async () => {
    cloudStudies = [];
    searches = [];
    fetches = [];
    route = [];
    settings = { rules: [rule({ maxStudies: 2 })], concurrency: 1 };
    fetchStudy = async (uid) => {
      fetches.push(uid);
      return 3;
    };
    prefetcher = new Prefetcher({
      archive, reader: () => reader, fetchStudy: (uid, options) => fetchStudy(uid, options), settings: () => settings,
      logger: pino({ level: 'silent' }), now: () => today, recheckMs: 20,
    });
    await prefetcher.start();
  });
  afterEach(async () => {
    await prefetcher.stop();
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a study arriving for a patient queues the patient\'s most recent priors from the archive and fetches them', async () => {
    const recent = cloudStudy({ PatientID: 'PF-1', StudyDate: '20300101', ModalitiesInStudy: 'CT' });
    const older = cloudStudy({ PatientID: 'PF-1', StudyDate: '20290101', ModalitiesInStudy: 'MR' });
    const oldest = cloudStudy({ PatientID: 'PF-1', StudyDate: '20280101', ModalitiesInStudy: 'CT' });
    cloudStudy({ PatientID: 'PF-1X', StudyDate: '20300101' }); // another patient whose ID starts the same
    const arrived = await arrive('PF-1');
    await prefetcher.idle();
    assert.deepEqual(searches.map((s) => [s.level, s.match]), [['study', { PatientID: 'PF-1' }]]);
    await waitFor(() => stateOf(recent) === 'done' && stateOf(older) === 'done', () => `states ${stateOf(recent)} ${stateOf(older)}`);
    assert.deepEqual(fetches, [recent, older]);
    assert.equal(stateOf(oldest), undefined, 'beyond maxStudies');
    assert.equal(stateOf(arrived), undefined, 'not the arriving study');
    assert.equal(archive.prefetch.get(recent)?.instancesFetched, 3);
    assert.equal(archive.prefetch.get(recent)?.triggerStudyUid, arrived);
    assert.equal(archive.cloud.studyLocation(oldest)?.location, 'cloud', 'the archive\'s answers are kept as cloud rows');
    const view = archive.prefetch.list({ limit: 10, offset: 0 }).find((j) => j.studyUid === recent);
    assert.deepEqual([view?.state, view?.studyDate, view?.modalities], ['done', '20300101', ['CT']]);
    // More instances of the same study plan nothing more.
    await archive.ingest(Readable.from([makeInstance({ studyUid: arrived, patientId: 'PF-1', rows: 8, columns: 8 })]), local);
    await prefetcher.idle();
    assert.equal(searches.length, 1);
  });

  test('a patient is PatientID plus issuer: studies of the same ID under another issuer are not priors', async () => {
    const same = cloudStudy({ PatientID: 'PF-2', StudyDate: '20300101' }, 'HOSP-A');
    const other = cloudStudy({ PatientID: 'PF-2', StudyDate: '20300102' }, 'HOSP-B');
    await arrive('PF-2', { IssuerOfPatientID: 'HOSP-A' });
    await prefetcher.idle();
    assert.deepEqual(searches[0]?.match, { PatientID: 'PF-2', IssuerOfPatientID: 'HOSP-A' });
    await waitFor(() => stateOf(same) === 'done', () => `state ${stateOf(same)}`);
    assert.equal(stateOf(other), undefined);
  });

  test('forwarding goes first: a fetch waits while the archive destination has instances to send', async () => {
    route = ['azure'];
    const prior = cloudStudy({ PatientID: 'PF-3', StudyDate: '20300101' });
    await arrive('PF-3'); // its instance is now pending for the archive destination
    await prefetcher.idle();
    assert.equal(stateOf(prior), 'queued');
    await new Promise((resolve) => setTimeout(resolve, 100)); // several rechecks of the gate
    assert.equal(stateOf(prior), 'queued', 'still waiting for forwarding');
    assert.deepEqual(fetches, []);
    deliverAll();
    await waitFor(() => stateOf(prior) === 'done', () => `state ${stateOf(prior)}`);
  });

  test('at most `concurrency` fetches at once; states move queued → fetching → done', async () => {
    const releases: Array<() => void> = [];
    fetchStudy = (uid) => new Promise((resolve) => {
      fetches.push(uid);
      releases.push(() => resolve(1));
    });
    const a = cloudStudy({ PatientID: 'PF-4', StudyDate: '20300102' });
    const b = cloudStudy({ PatientID: 'PF-4', StudyDate: '20300101' });
    await arrive('PF-4');
    await waitFor(() => stateOf(a) === 'fetching', () => `state ${stateOf(a)}`);
    assert.equal(stateOf(b), 'queued');
    assert.deepEqual(fetches, [a]);
    releases.shift()!();
    await waitFor(() => stateOf(b) === 'fetching', () => `state ${stateOf(b)}`);
    assert.equal(stateOf(a), 'done');
    releases.shift()!();
    await waitFor(() => stateOf(b) === 'done', () => `state ${stateOf(b)}`);
    assert.deepEqual(archive.prefetch.counts().fetching, 0);
  });

  test('offline: the job is queued again for later; another failure fails it with the reason', async () => {
    const offline = cloudStudy({ PatientID: 'PF-5', StudyDate: '20300102' });
    const broken = cloudStudy({ PatientID: 'PF-5', StudyDate: '20300101' });
    fetchStudy = async (uid) => {
      if (uid === offline) throw new ArchiveReadError('offline', 'the archive is unreachable (ECONNREFUSED)', { url: 'http://x', retryable: true });
      throw new ArchiveReadError('other', 'HTTP 406', { url: 'http://x', status: 406, retryable: false });
    };
    await arrive('PF-5');
    await waitFor(() => stateOf(broken) === 'failed', () => `state ${stateOf(broken)}`);
    const waiting = archive.prefetch.get(offline)!;
    assert.equal(waiting.state, 'queued');
    assert.match(waiting.lastError ?? '', /ECONNREFUSED/);
    assert.ok(waiting.notBefore > Date.now(), 'not before its backoff');
    assert.match(archive.prefetch.get(broken)!.lastError ?? '', /HTTP 406/);
  });

  test('data fetched from the archive triggers no prefetch; without rules nothing is searched', async () => {
    cloudStudy({ PatientID: 'PF-6', StudyDate: '20300101' });
    await archive.ingest(Readable.from([makeInstance({ patientId: 'PF-6', rows: 8, columns: 8 })]), { callingAe: 'ARCHIVE', peer: 'azure', origin: 'cloud' });
    settings = { ...settings, rules: [] };
    await arrive('PF-6');
    await prefetcher.idle();
    assert.deepEqual(searches, []);
  });

  test('a new cloud study of a patient seen here is prefetched; one of a patient unknown here is not', async () => {
    await arrive('PF-7');
    await prefetcher.idle();
    const fresh = cloudStudy({ PatientID: 'PF-7', StudyDate: '20300615' });
    const stranger = cloudStudy({ PatientID: 'PF-8', StudyDate: '20300615' });
    archive.cloud.upsert('study', cloudStudies.filter((d) => [fresh, stranger].includes((d['0020000D']?.Value as string[])[0]!)));
    prefetcher.cloudStudiesAppeared([fresh, stranger]);
    await prefetcher.idle();
    await waitFor(() => stateOf(fresh) === 'done', () => `state ${stateOf(fresh)}`);
    assert.equal(stateOf(stranger), undefined);
  });

  test('a pinned study whose stale copies were dropped (updated upstream) is fetched again; an unpinned one is not', async () => {
    const pinnedUid = await arrive('PF-10');
    const loose = await arrive('PF-11');
    await prefetcher.idle();
    archive.cloud.setPinned(pinnedUid, true);
    prefetcher.copiesDropped([pinnedUid, loose]);
    await waitFor(() => stateOf(pinnedUid) === 'done', () => `state ${stateOf(pinnedUid)}`);
    assert.equal(archive.prefetch.get(pinnedUid)?.triggerStudyUid, '');
    assert.equal(stateOf(loose), undefined);
  });

  test('a fetch cut by a stop is queued again and finished after the restart', async () => {
    fetchStudy = (uid, { signal }) => new Promise((_resolve, reject) => {
      fetches.push(uid);
      signal.addEventListener('abort', () => reject(signal.reason as Error));
    });
    const prior = cloudStudy({ PatientID: 'PF-9', StudyDate: '20300101' });
    await arrive('PF-9');
    await waitFor(() => stateOf(prior) === 'fetching', () => `state ${stateOf(prior)}`);
    await prefetcher.stop();
    assert.equal(stateOf(prior), 'queued');
    fetchStudy = async () => 2;
    prefetcher = new Prefetcher({ archive, reader: () => reader, fetchStudy: (uid, o) => fetchStudy(uid, o), settings: () => settings, logger: pino({ level: 'silent' }), now: () => today });
    await prefetcher.start();
    await waitFor(() => stateOf(prior) === 'done', () => `state ${stateOf(prior)}`);
  });
});
