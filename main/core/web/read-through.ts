/**
 * What DICOMweb reads need of the clinic's archive (cloud/): whether a resource must come from it, waiting
 * for one instance to arrive, the HTTP answer to an archive that fails, the Warning of a QIDO answer whose
 * archive part is missing, and the access time of the studies read (for eviction by access).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ArchiveReadError } from '../cloud/archive-errors.js';
import type { InstanceScope, ReadThrough } from '../cloud/read-through.js';
import { isDiskFull } from '../store/disk-full.js';
import type { WebContext } from './context.js';
import { HttpError } from './http-errors.js';

export type PathScope = { study?: string; series?: string; instance?: string };

/** The read-through of the archive, when one is configured and the path's scope is not all here. */
export function throughArchive(ctx: WebContext, path: PathScope): { readThrough: ReadThrough; scope: InstanceScope } | undefined {
  const readThrough = ctx.cloud?.()?.readThrough;
  if (!readThrough || path.study === undefined) return undefined;
  const scope = toScope(path);
  return readThrough.needsArchive(scope) ? { readThrough, scope } : undefined;
}

export function toScope(path: PathScope): InstanceScope {
  return { studyUid: path.study!, seriesUid: path.series, sopInstanceUid: path.instance };
}

/** The HTTP answer to a read the archive could not serve. */
export function archiveHttpError(error: unknown, what: string): unknown {
  if (!(error instanceof ArchiveReadError)) return error;
  switch (error.kind) {
    case 'not-found':
      return new HttpError(404, `${what} is neither here nor in the archive`);
    case 'offline':
      return error.details.code === 'TIMEOUT'
        ? new HttpError(504, `${what} is not here and the archive did not answer in time: ${error.message}`)
        : new HttpError(503, `${what} is not here and the archive is unreachable: ${error.message}`);
    case 'auth':
      return new HttpError(502, `${what} is not here and the archive refused our sign-in: ${error.message}`);
    default:
      return new HttpError(502, `${what} is not here and the archive failed: ${error.message}`);
  }
}

/** Aborts when the client goes away before its answer is complete. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new Error('the client went away'));
  });
  return controller.signal;
}

/**
 * Makes one instance of the path here, fetching it from the archive when it is only there (a request
 * inside a running fetch waits for it). Nothing to do when it is here or no archive is configured.
 */
export async function instanceHere(ctx: WebContext, path: Required<PathScope>, signal?: AbortSignal): Promise<void> {
  const through = throughArchive(ctx, path);
  if (!through) return;
  try {
    await through.readThrough.instance({ studyUid: path.study, seriesUid: path.series, sopInstanceUid: path.instance }, { signal });
  } catch (error) {
    throw archiveHttpError(error, `instance ${path.instance}`);
  }
}

/**
 * For a study or series thumbnail of data only in the archive: lists its instances there and fetches the
 * one `choose` picks (the same choice as for local data). Nothing to do when some of it is here.
 */
export async function representativeHere(
  ctx: WebContext, path: PathScope, choose: (instances: Array<{ seriesUid: string; sopInstanceUid: string }>) => { seriesUid: string; sopInstanceUid: string } | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const through = throughArchive(ctx, path);
  if (!through || through.readThrough.known(through.scope).some((i) => i.local)) return;
  try {
    const listed = await through.readThrough.list(through.scope, { signal });
    const chosen = choose(listed);
    if (!chosen) return;
    await through.readThrough.instance({ studyUid: through.scope.studyUid, seriesUid: chosen.seriesUid, sopInstanceUid: chosen.sopInstanceUid }, { signal });
  } catch (error) {
    throw archiveHttpError(error, path.series ? `series ${path.series}` : `study ${path.study}`);
  }
}

/** A Warning header value (RFC 7234 5.5, as PS3.18 8.3.4.4 uses it): code 299, our agent name, quoted text. */
export function warning(text: string): string {
  const quoted = text.replace(/[^\x20-\x7e]/g, ' ').replace(/["\\]/g, "'");
  return `299 dicom-edge "${quoted}"`;
}

/** WADO-RS (and rendered) routes: everything under a study except the QIDO searches of its series and instances. */
const READ_ROUTE = /^\/dicom-web\/studies\/:study(\/series\/:series(\/instances\/:instance)?)?(\/(metadata|rendered|thumbnail|frames\/:frames(\/rendered|\/thumbnail)?|bulkdata(\/\*)?))?$/;
/** A study read again within this time is not written again. */
const TOUCH_EVERY_MS = 60_000;
const MAX_REMEMBERED = 10_000;

/** Each read of a study (WADO-RS, rendered) records its access time, at most once a minute per study. */
export function registerAccessTimes(app: FastifyInstance, ctx: WebContext): void {
  const touched = new Map<string, number>();
  app.addHook('onRequest', async (request) => {
    if (request.method !== 'GET' || !READ_ROUTE.test(request.routeOptions.url ?? '')) return;
    const study = (request.params as { study?: string }).study;
    if (!study) return;
    const now = Date.now();
    if (now - (touched.get(study) ?? 0) < TOUCH_EVERY_MS) return;
    if (touched.size >= MAX_REMEMBERED) touched.clear();
    touched.set(study, now);
    try {
      ctx.archive.cloud.touch([study], now);
    } catch (error) {
      // A read is not refused for want of room to note it: the study only looks older to eviction.
      if (!isDiskFull(error)) throw error;
      ctx.logger.warn({ event: 'access-time-not-recorded', studyUid: study, reason: (error as Error).message },
        'the disk is full: the study is read, its access time not recorded');
    }
  });
}
