import type { FastifyInstance, FastifyRequest } from 'fastify';
import { describeIssues } from '../contract/settings-problems.js';
import { SettingsError } from '../settings/errors.js';
import { StaleSettingsError } from '../settings/live-settings.js';
import { destinationSchema, type DestinationSettings } from '../contract/settings.js';
import { freeBytes } from '../store/quota.js';
import type { WebContext } from './context.js';
import { ForwardControlError, type ForwardControl, type OutboxFilter } from './forward-port.js';
import { HttpError, uidParams } from './http-errors.js';
import { instanceSyncPage } from './instance-sync.js';
import { maskSettings, unmaskDestination, unmaskSettings } from './settings-mask.js';

const STATES = ['pending', 'sending', 'delivered', 'failed', 'conflict', 'cancelled'] as const;
const RATE_WINDOW_MS = 60_000;

export function registerApi(app: FastifyInstance, ctx: WebContext): void {
  const db = ctx.archive.db;
  const startedAt = Date.now();

  app.get('/api/health', async () => ({ status: 'ok', uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) }));

  app.get('/api/ready', async (_request, reply) => {
    const ready = ctx.ready();
    return reply.code(ready ? 200 : 503).send({ ready });
  });

  app.get('/api/info', async () => {
    const settings = ctx.settings();
    const counts = db
      .prepare('SELECT (SELECT COUNT(*) FROM studies) AS studies, (SELECT COUNT(*) FROM series) AS series, (SELECT COUNT(*) FROM instances) AS instances')
      .get() as { studies: number; series: number; instances: number };
    return {
      version: ctx.version,
      aeTitle: settings.aeTitle,
      ports: { dimse: settings.dimse.port, dimseTls: settings.dimse.tls.enabled ? settings.dimse.tls.port : null, http: ctx.httpPort() },
      httpHost: settings.http.host,
      dataDir: ctx.dataDir,
      storage: {
        usedBytes: ctx.archive.usedBytes,
        freeBytes: await freeBytes(ctx.dataDir).catch(() => null),
        maxArchiveBytes: settings.storage.maxArchiveBytes,
        minFreeBytes: settings.storage.minFreeBytes,
      },
      counts,
      forwarding: ctx.forward() ? 'running' : 'not available',
    };
  });

  app.get('/api/outbox', async () => {
    const rows = db
      .prepare('SELECT destination, state, COUNT(*) AS count, COALESCE(SUM(size_bytes),0) AS bytes FROM outbox GROUP BY destination, state')
      .all() as Array<{ destination: string; state: string; count: number; bytes: number }>;
    const since = Date.now() - RATE_WINDOW_MS;
    const recent = db
      .prepare(`SELECT destination, COUNT(*) AS count, COALESCE(SUM(size_bytes),0) AS bytes FROM outbox
                WHERE state = 'delivered' AND updated_at >= ? GROUP BY destination`)
      .all(since) as Array<{ destination: string; count: number; bytes: number }>;
    const lastErrors = db
      .prepare(`SELECT o.destination, o.last_error, o.updated_at FROM outbox o
                JOIN (SELECT destination, MAX(updated_at) AS at FROM outbox WHERE last_error IS NOT NULL GROUP BY destination) m
                ON m.destination = o.destination AND m.at = o.updated_at WHERE o.last_error IS NOT NULL`)
      .all() as Array<{ destination: string; last_error: string; updated_at: number }>;
    const status = await forwardStatus(ctx.forward());
    const names = new Set([...ctx.settings().destinations.map((d) => d.name), ...rows.map((r) => r.destination), ...status.map((s) => s.name)]);
    const totals = Object.fromEntries(STATES.map((s) => [s, { count: 0, bytes: 0 }]));
    const destinations = [...names].sort().map((name) => {
      const counts = Object.fromEntries(STATES.map((s) => [s, { count: 0, bytes: 0 }]));
      for (const row of rows.filter((r) => r.destination === name)) {
        counts[row.state] = { count: row.count, bytes: row.bytes };
        totals[row.state]!.count += row.count;
        totals[row.state]!.bytes += row.bytes;
      }
      const rate = recent.find((r) => r.destination === name);
      const live = status.find((s) => s.name === name);
      const error = lastErrors.find((e) => e.destination === name);
      return {
        name,
        unrouted: name === '*',
        counts,
        bytesPending: counts.pending!.bytes + counts.sending!.bytes,
        rate: {
          instancesPerMinute: live ? Math.round(live.instancesPerSecond * 60) : (rate?.count ?? 0) * (60_000 / RATE_WINDOW_MS),
          bytesPerSecond: live?.bytesPerSecond ?? Math.round((rate?.bytes ?? 0) / (RATE_WINDOW_MS / 1000)),
        },
        connection: live ? { state: live.state, since: live.since } : { state: 'unknown', since: null },
        lastError: live?.lastError ?? error?.last_error ?? null,
        lastErrorAt: error?.updated_at ?? null,
        nextAttemptAt: live?.nextAttemptAt ?? null,
      };
    });
    const bytesPending = destinations.reduce((n, d) => n + d.bytesPending, 0);
    return { totals, bytesPending, destinations, forwarding: ctx.forward() ? 'running' : 'not available' };
  });

  const syncOf = (studyUids: string[]) => {
    if (studyUids.length === 0) return [];
    const marks = studyUids.map(() => '?').join(',');
    const rows = db
      .prepare(`SELECT study_uid, destination, state, COUNT(*) AS count FROM outbox WHERE study_uid IN (${marks}) GROUP BY study_uid, destination, state`)
      .all(...studyUids) as Array<{ study_uid: string; destination: string; state: string; count: number }>;
    const sizes = new Map((db.prepare(`SELECT study_uid, size_bytes FROM studies WHERE study_uid IN (${marks})`)
      .all(...studyUids) as Array<{ study_uid: string; size_bytes: number }>).map((r) => [r.study_uid, r.size_bytes]));
    return studyUids.map((studyUid) => {
      const mine = rows.filter((r) => r.study_uid === studyUid);
      const destinations = [...new Set(mine.map((r) => r.destination))].sort().map((name) => {
        const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
        for (const r of mine.filter((m) => m.destination === name)) counts[r.state] = r.count;
        return { name, counts, state: overallState(counts) };
      });
      const counts = Object.fromEntries(STATES.map((s) => [s, mine.filter((r) => r.state === s).reduce((n, r) => n + r.count, 0)]));
      return { studyUid, state: overallState(counts), destinations, sizeBytes: sizes.get(studyUid) ?? 0 };
    });
  };

  app.get('/api/sync', async (request) => {
    const query = request.query as Record<string, string | string[] | undefined>;
    const given = [query.study ?? []].flat().flatMap((s) => s.split(',')).filter(Boolean);
    for (const uid of given) uidParams({ params: { study: uid } } as unknown as FastifyRequest);
    const studies = given.length > 0
      ? given.slice(0, 1000)
      : (db.prepare('SELECT study_uid FROM studies ORDER BY updated_at DESC LIMIT 100').all() as Array<{ study_uid: string }>).map((r) => r.study_uid);
    return syncOf(studies);
  });

  app.get('/api/studies/:study/sync', async (request) => {
    const { study } = uidParams(request);
    const exists = db.prepare('SELECT 1 FROM studies WHERE study_uid = ?').get(study);
    if (!exists) throw new HttpError(404, `no study ${study}`);
    const [summary] = syncOf([study!]);
    const problems = db
      .prepare(`SELECT id, sop_instance_uid AS sopInstanceUid, destination, state, attempts, last_error AS lastError,
                       failure_reason AS failureReason, updated_at AS updatedAt FROM outbox
                WHERE study_uid = ? AND state IN ('failed','conflict') ORDER BY updated_at DESC LIMIT 500`)
      .all(study);
    const query = request.query as Record<string, string | undefined>;
    const instances = instanceSyncPage(db, study!, boundedInt(query.limit, 1000, 1, 5000, 'limit'), boundedInt(query.offset, 0, 0, Number.MAX_SAFE_INTEGER, 'offset'));
    return { ...summary, problems, instances };
  });

  app.get('/api/failures', async (request) => {
    const query = request.query as Record<string, string | undefined>;
    const limit = boundedInt(query.limit, 100, 1, 1000, 'limit');
    const offset = boundedInt(query.offset, 0, 0, Number.MAX_SAFE_INTEGER, 'offset');
    const filter = query.destination ? 'AND o.destination = ?' : '';
    const args: unknown[] = query.destination ? [query.destination] : [];
    const items = db
      .prepare(`SELECT o.id, o.sop_instance_uid AS sopInstanceUid, o.study_uid AS studyUid, o.destination, o.state, o.attempts,
                       o.last_error AS lastError, o.failure_reason AS failureReason, o.updated_at AS updatedAt,
                       s.patient_name AS patientName, s.patient_id AS patientId, s.study_date AS studyDate, s.study_description AS studyDescription
                FROM outbox o LEFT JOIN studies s ON s.study_uid = o.study_uid
                WHERE o.state IN ('failed','conflict') ${filter} ORDER BY o.updated_at DESC, o.id DESC LIMIT ? OFFSET ?`)
      .all(...args, limit, offset);
    const total = (db.prepare(`SELECT COUNT(*) AS n FROM outbox o WHERE o.state IN ('failed','conflict') ${filter}`).get(...args) as { n: number }).n;
    return { total, limit, offset, items };
  });

  app.get('/api/failures/:id', async (request) => {
    const id = failureId(request);
    const row = db
      .prepare(`SELECT id, sop_instance_uid AS sopInstanceUid, study_uid AS studyUid, destination, state, replaces_earlier AS replacesEarlier,
                       attempts, next_attempt_at AS nextAttemptAt, last_error AS lastError, failure_reason AS failureReason,
                       warning_reason AS warningReason, size_bytes AS sizeBytes, created_at AS createdAt, updated_at AS updatedAt
                FROM outbox WHERE id = ?`)
      .get(id) as (Record<string, unknown> & { sopInstanceUid: string; studyUid: string }) | undefined;
    if (!row) throw new HttpError(404, `no outbox entry ${id}`);
    const instance = db
      .prepare(`SELECT sop_instance_uid AS sopInstanceUid, series_uid AS seriesUid, study_uid AS studyUid, sop_class_uid AS sopClassUid,
                       transfer_syntax_uid AS transferSyntaxUid, size_bytes AS sizeBytes, calling_ae AS callingAe, received_at AS receivedAt
                FROM instances WHERE sop_instance_uid = ?`)
      .get(row.sopInstanceUid);
    const study = db
      .prepare(`SELECT study_uid AS studyUid, patient_name AS patientName, patient_id AS patientId, patient_birth_date AS patientBirthDate,
                       patient_sex AS patientSex, study_date AS studyDate, study_time AS studyTime, accession_number AS accessionNumber,
                       study_id AS studyId, study_description AS studyDescription, referring_physician_name AS referringPhysicianName,
                       modalities_in_study AS modalitiesInStudy, num_series AS numSeries, num_instances AS numInstances,
                       size_bytes AS sizeBytes, received_at AS receivedAt, updated_at AS updatedAt
                FROM studies WHERE study_uid = ?`)
      .get(row.studyUid);
    return { entry: { ...row, replacesEarlier: row.replacesEarlier === 1 }, instance: instance ?? null, study: study ?? null };
  });

  const act = async (request: FastifyRequest, action: 'retry' | 'cancel' | 'overwrite' | 'pause' | 'resume', selector: OutboxFilter) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance, so there is nothing to ' + action);
    try {
      if (action === 'pause' || action === 'resume') {
        forward[action](selector.destination!);
        ctx.logger.info({ event: `destination-${action}`, peer: request.ip, destination: selector.destination }, `destination ${action}d`);
        return { action, destination: selector.destination };
      }
      const changed = forward[action](selector);
      ctx.logger.info({ event: `outbox-${action}`, peer: request.ip, ...selector, changed }, `outbox ${action}`);
      return { action, changed };
    } catch (error) {
      if (error instanceof ForwardControlError) throw new HttpError(error.statusCode, error.message);
      throw error;
    }
  };


  const knownDestination = (name: string) => {
    const known = ctx.settings().destinations.some((d) => d.name === name)
      || db.prepare('SELECT 1 FROM outbox WHERE destination = ? LIMIT 1').get(name) !== undefined;
    if (!known) throw new HttpError(404, `no destination ${JSON.stringify(name)}`);
    return name;
  };
  for (const action of ['pause', 'resume', 'retry', 'cancel'] as const) {
    app.post(`/api/destinations/:name/${action}`, async (request) =>
      act(request, action, { destination: knownDestination((request.params as { name: string }).name) }));
  }
  app.post('/api/destinations/:name/test', async (request) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance');
    const name = (request.params as { name: string }).name;
    const draft = draftDestination(request.body, ctx.settings().destinations.find((d) => d.name === name));
    return controlCall(() => forward.testConnection(draft ? name : knownDestination(name), draft));
  });
  app.post('/api/destinations/:name/sign-in', async (request) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance');
    return controlCall(() => forward.startDeviceCodeSignIn(knownDestination((request.params as { name: string }).name)));
  });
  app.get('/api/destinations/:name/sign-in', async (request) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance');
    return controlCall(() => forward.deviceCodeStatus(knownDestination((request.params as { name: string }).name)));
  });
  app.get('/api/destinations', async () => forwardStatus(ctx.forward()));

  for (const action of ['retry', 'cancel', 'overwrite'] as const) {
    app.post(`/api/failures/:id/${action}`, async (request) => {
      const id = failureId(request);
      const row = db.prepare('SELECT destination, sop_instance_uid FROM outbox WHERE id = ?').get(id) as { destination: string; sop_instance_uid: string } | undefined;
      if (!row) throw new HttpError(404, `no outbox entry ${id}`);
      return act(request, action, { destination: row.destination, sopInstanceUid: row.sop_instance_uid });
    });
    app.post(`/api/studies/:study/${action}`, async (request) => {
      const { study } = uidParams(request);
      const destination = (request.query as Record<string, string | undefined>).destination;
      return act(request, action, { studyUid: study, ...(destination ? { destination: knownDestination(destination) } : {}) });
    });
  }

  // The revision travels as the ETag; a PUT with If-Match is refused with 409 when another write came first.
  app.get('/api/settings', async (_request, reply) => {
    reply.header('etag', `"${ctx.settingsEditor.revision}"`);
    return maskSettings(ctx.settingsEditor.configured);
  });

  app.put('/api/settings', { bodyLimit: 1024 * 1024 }, async (request, reply) => {
    let update;
    try {
      update = await ctx.settingsEditor.update((configured) => {
        const unmasked = unmaskSettings(request.body, configured);
        if (unmasked.problems.length > 0) throw new SettingsRejected(unmasked.problems);
        return unmasked.value;
      }, { ifRevision: ifMatch(request.headers['if-match']) });
    } catch (error) {
      if (error instanceof SettingsError) throw new SettingsRejected(error.problems);
      if (error instanceof StaleSettingsError) throw new HttpError(409, error.message);
      throw error;
    }
    const { settings, ...outcome } = update;
    ctx.logger.info({ event: 'settings-written', peer: request.ip, ...outcome }, 'settings changed over HTTP');
    reply.header('etag', `"${update.revision}"`);
    return { settings: maskSettings(settings), ...outcome };
  });
}

/** The revisions an If-Match header accepts; undefined for none or `*` (any). */
function ifMatch(header: string | undefined): string[] | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  return header.split(',').map((tag) => tag.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1')).filter(Boolean);
}

/**
 * The edited, unsaved destination a /test body may carry (`{ "destination": {…} }`), with stored secrets
 * put back under the same rule as a settings write; undefined when the body names none (test the saved one).
 */
function draftDestination(body: unknown, stored: DestinationSettings | undefined): DestinationSettings | undefined {
  const given = body && typeof body === 'object' ? (body as { destination?: unknown }).destination : undefined;
  if (given === undefined) return undefined;
  const unmasked = unmaskDestination(given, stored, 'destination');
  if (unmasked.problems.length > 0) throw new SettingsRejected(unmasked.problems);
  const parsed = destinationSchema.safeParse(unmasked.value);
  if (!parsed.success) throw new SettingsRejected(describeIssues(parsed.error, unmasked.value).map((p) => p.replace(/^field "/, 'field "destination.')));
  return parsed.data;
}

export class SettingsRejected extends HttpError {
  constructor(readonly problems: string[]) {
    super(400, `invalid settings: ${problems.join('; ')}`);
  }
}

function overallState(counts: Record<string, number>): string {
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  if (total === 0) return 'local-only';
  if ((counts.failed ?? 0) + (counts.conflict ?? 0) > 0) return 'failed';
  if ((counts.pending ?? 0) + (counts.sending ?? 0) > 0) return counts.delivered ? 'partial' : 'pending';
  if ((counts.delivered ?? 0) === total) return 'synced';
  return (counts.delivered ?? 0) > 0 ? 'synced-with-cancellations' : 'cancelled';
}

async function forwardStatus(forward: ForwardControl | undefined) {
  if (!forward) return [];
  try {
    return await forward.status();
  } catch {
    return [];
  }
}

async function controlCall<T>(call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ForwardControlError) throw new HttpError(error.statusCode, error.message);
    throw error;
  }
}

function failureId(request: FastifyRequest): number {
  const id = Number((request.params as { id: string }).id);
  if (!Number.isSafeInteger(id) || id < 1) throw new HttpError(400, 'outbox entry id must be a positive integer');
  return id;
}

function boundedInt(text: string | undefined, fallback: number, min: number, max: number, name: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new HttpError(400, `${name} must be an integer from ${min} to ${max}`);
  return n;
}

