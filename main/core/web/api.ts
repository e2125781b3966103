import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { archiveState } from '../cloud/archive-reachability.js';
import { API_ROUTES as ROUTES } from '../contract/api/routes.js';
import { describeIssues } from '../contract/settings-problems.js';
import { archiveDestination, destinationSchema, type DestinationSettings } from '../contract/settings.js';
import { SettingsError } from '../settings/errors.js';
import { StaleSettingsError } from '../settings/live-settings.js';
import { freeBytes } from '../store/quota.js';
import type { WebContext } from './context.js';
import { ForwardControlError, type ForwardControl, type OutboxFilter } from './forward-port.js';
import { HttpError } from './http-errors.js';
import type { HttpsIdentity } from './https-identity.js';
import { maskSettings, unmaskDestination, unmaskSettings } from './settings-mask.js';

const RATE_WINDOW_MS = 60_000;

/**
 * The /api routes. Each declares its schemas from the wire contract (main/core/contract/api/routes.ts):
 * requests are validated and typed by them, and answers are checked against them on the way out.
 */
export function registerApi(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  const reads = ctx.archive.reads;
  const startedAt = Date.now();

  app.get('/api/health', { schema: ROUTES['GET /api/health'] }, async () => ({ status: 'ok' as const, uptimeSeconds: Math.round((Date.now() - startedAt) / 1000) }));

  app.get('/api/ready', { schema: ROUTES['GET /api/ready'] }, async (_request, reply) => {
    const ready = ctx.ready();
    return reply.code(ready ? 200 : 503).send({ ready });
  });

  app.get('/api/info', { schema: ROUTES['GET /api/info'] }, async () => {
    const settings = ctx.settings();
    const counts = reads.indexCounts();
    return {
      version: ctx.version,
      aeTitle: settings.aeTitle,
      ports: { dimse: settings.dimse.port, dimseTls: settings.dimse.tls.enabled ? settings.dimse.tls.port : null, http: ctx.httpPort() },
      httpHost: settings.http.host,
      https: httpsInfo(ctx.https?.()),
      dataDir: ctx.dataDir,
      storage: {
        usedBytes: ctx.archive.usedBytes,
        freeBytes: await freeBytes(ctx.dataDir).catch(() => null),
        maxArchiveBytes: settings.storage.maxArchiveBytes,
        minFreeBytes: settings.storage.minFreeBytes,
      },
      counts,
      forwarding: ctx.forward() ? 'running' as const : 'not available' as const,
      archive: await archiveStatus(ctx),
    };
  });

  app.get('/api/outbox', { schema: ROUTES['GET /api/outbox'] }, async () => {
    const status = await forwardStatus(ctx.forward());
    const { totals, destinations: queues } = reads.outboxSummary(Date.now() - RATE_WINDOW_MS,
      [...ctx.settings().destinations.map((d) => d.name), ...status.map((s) => s.name)]);
    const destinations = queues.map(({ destination: name, counts, deliveredSince: rate, lastError: error }) => {
      const live = status.find((s) => s.name === name);
      return {
        name,
        unrouted: name === '*',
        counts,
        bytesPending: counts.pending.bytes + counts.sending.bytes,
        rate: {
          instancesPerMinute: live ? Math.round(live.instancesPerSecond * 60) : rate.count * (60_000 / RATE_WINDOW_MS),
          bytesPerSecond: live?.bytesPerSecond ?? Math.round(rate.bytes / (RATE_WINDOW_MS / 1000)),
        },
        connection: live ? { state: live.state, since: live.since } : { state: 'unknown' as const, since: null },
        lastError: live?.lastError ?? error?.message ?? null,
        lastErrorAt: error?.at ?? null,
        nextAttemptAt: live?.nextAttemptAt ?? null,
      };
    });
    const bytesPending = destinations.reduce((n, d) => n + d.bytesPending, 0);
    return { totals, bytesPending, destinations, forwarding: ctx.forward() ? 'running' as const : 'not available' as const };
  });

  app.get('/api/sync', { schema: ROUTES['GET /api/sync'] }, async (request) => {
    const { study: given } = request.query;
    return reads.studySync(given.length > 0 ? given : reads.recentStudies(100));
  });

  app.get('/api/studies/:study/sync', { schema: ROUTES['GET /api/studies/:study/sync'] }, async (request) => {
    const { study } = request.params;
    if (!reads.studyExists(study)) throw new HttpError(404, `no study ${study}`);
    const [summary] = reads.studySync([study]);
    const problems = reads.studyProblems(study);
    return { ...summary!, problems, instances: reads.instanceStates(study, request.query) };
  });

  app.get('/api/failures', { schema: ROUTES['GET /api/failures'] }, async (request) => {
    const { destination, limit, offset } = request.query;
    const { total, items } = reads.failures({ destination, limit, offset });
    return { total, limit, offset, items };
  });

  app.get('/api/failures/:id', { schema: ROUTES['GET /api/failures/:id'] }, async (request) => {
    const { id } = request.params;
    const detail = reads.failureDetail(id);
    if (!detail) throw new HttpError(404, `no outbox entry ${id}`);
    return detail;
  });

  const act = async (request: FastifyRequest, action: 'retry' | 'cancel' | 'overwrite' | 'pause' | 'resume', selector: OutboxFilter) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance, so there is nothing to ' + action);
    try {
      if (action === 'pause' || action === 'resume') {
        forward[action](selector.destination!);
        ctx.logger.info({ event: `destination-${action}`, peer: request.ip, destination: selector.destination }, `destination ${action}d`);
        return { action, destination: selector.destination! };
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
      || reads.outboxHasDestination(name);
    if (!known) throw new HttpError(404, `no destination ${JSON.stringify(name)}`);
    return name;
  };
  for (const action of ['pause', 'resume', 'retry', 'cancel'] as const) {
    app.post(`/api/destinations/:name/${action}`, { schema: ROUTES[`POST /api/destinations/:name/${action}`] }, async (request) =>
      act(request, action, { destination: knownDestination(request.params.name) }));
  }
  app.post('/api/destinations/:name/test', { schema: ROUTES['POST /api/destinations/:name/test'] }, async (request) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance');
    const { name } = request.params;
    const draft = draftDestination(request.body?.destination, ctx.settings().destinations.find((d) => d.name === name));
    return controlCall(() => forward.testConnection(draft ? name : knownDestination(name), draft));
  });
  app.post('/api/destinations/:name/sign-in', { schema: ROUTES['POST /api/destinations/:name/sign-in'] }, async (request) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance');
    return controlCall(() => forward.startDeviceCodeSignIn(knownDestination(request.params.name)));
  });
  app.get('/api/destinations/:name/sign-in', { schema: ROUTES['GET /api/destinations/:name/sign-in'] }, async (request) => {
    const forward = ctx.forward();
    if (!forward) throw new HttpError(501, 'store-and-forward is not running in this appliance');
    return controlCall(() => forward.deviceCodeStatus(knownDestination(request.params.name)));
  });
  app.get('/api/destinations', { schema: ROUTES['GET /api/destinations'] }, async () => forwardStatus(ctx.forward()));

  for (const action of ['retry', 'cancel', 'overwrite'] as const) {
    app.post(`/api/failures/:id/${action}`, { schema: ROUTES[`POST /api/failures/:id/${action}`] }, async (request) => {
      const { id } = request.params;
      const entry = reads.outboxEntry(id);
      if (!entry) throw new HttpError(404, `no outbox entry ${id}`);
      return act(request, action, { destination: entry.destination, sopInstanceUid: entry.sopInstanceUid });
    });
    app.post(`/api/studies/:study/${action}`, { schema: ROUTES[`POST /api/studies/:study/${action}`] }, async (request) => {
      const { destination } = request.query;
      return act(request, action, { studyUid: request.params.study, ...(destination ? { destination: knownDestination(destination) } : {}) });
    });
  }

  // The revision travels as the ETag; a PUT with If-Match is refused with 409 when another write came first.
  app.get('/api/settings', { schema: ROUTES['GET /api/settings'] }, async (_request, reply) => {
    reply.header('etag', `"${ctx.settingsEditor.revision}"`);
    return maskSettings(ctx.settingsEditor.configured);
  });

  app.put('/api/settings', { schema: ROUTES['PUT /api/settings'], bodyLimit: 1024 * 1024 }, async (request, reply) => {
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
function draftDestination(given: unknown, stored: DestinationSettings | undefined): DestinationSettings | undefined {
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

/**
 * The archive destination as its forward worker or the reads from it last found it, whichever learned
 * something later (the app says "archive offline" from this).
 */
async function archiveStatus(ctx: WebContext) {
  const destination = archiveDestination(ctx.settings());
  if (!destination) return null;
  const live = (await forwardStatus(ctx.forward())).find((s) => s.name === destination.name);
  const forwarding = live
    ? { state: live.state, since: live.since, lastError: live.lastError }
    : { state: 'unknown' as const, since: null, lastError: null };
  return { name: destination.name, ...archiveState(forwarding, ctx.cloud?.()?.readReachability()) };
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

function httpsInfo(identity: HttpsIdentity | undefined) {
  if (!identity) return null;
  return { source: identity.source, fingerprint256: identity.fingerprint256, certFile: identity.certFile, notAfter: identity.notAfter };
}
