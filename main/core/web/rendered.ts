import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { parseFrameList } from '../dicom/pixel-frames.js';
import { parseAccept, typeMatches } from '../multipart/media-type.js';
import type { InstanceScope, StoredInstance } from '../store/read-models/index-reads.js';
import type { WebContext } from './context.js';
import type { Admission } from './image-pool.js';
import type { RenderOptions } from './image-render.js';
import { framesParams, instanceParams, renderedQuery, seriesParams, studyParams } from './dicomweb-params.js';
import { HttpError, withFrameStatus } from './http-errors.js';
import { sendMultipart, type ResponsePart } from './multipart-response.js';
import { clientGone, instanceHere, representativeHere, warning } from './read-through.js';

const INSTANCE = '/dicom-web/studies/:study/series/:series/instances/:instance';
const THUMBNAIL_SIZE = 128;
/**
 * Renderings kept in the thumbnail cache: every /thumbnail, and /rendered (instance, frame, study and series)
 * whose viewport fits this box, as viewers ask for previews. Full-size renderings are made each time: they
 * would fill the cache with images a viewer seldom asks for twice.
 */
const CACHED_MAX_SIDE = 256;

export function registerRendered(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  for (const [path, params, kind] of [
    [`${INSTANCE}/rendered`, instanceParams, 'rendered'],
    [`${INSTANCE}/frames/:frames/rendered`, framesParams, 'rendered'],
    [`${INSTANCE}/thumbnail`, instanceParams, 'thumbnail'],
    [`${INSTANCE}/frames/:frames/thumbnail`, framesParams, 'thumbnail'],
    // Series and study thumbnails show a representative instance: the middle one of the (first) series.
    ['/dicom-web/studies/:study/series/:series/thumbnail', seriesParams, 'thumbnail'],
    ['/dicom-web/studies/:study/thumbnail', studyParams, 'thumbnail'],
  ] as const) {
    app.get(path, { schema: { params, querystring: renderedQuery } }, (request, reply) => render(ctx, request.params, request.query, request.headers.accept, reply, kind));
  }
  // Study and series rendered (PS3.18 10.4.1.1.3): every frame of every instance, one part each, rendered as it is sent.
  for (const [path, params] of [
    ['/dicom-web/studies/:study/series/:series/rendered', seriesParams],
    ['/dicom-web/studies/:study/rendered', studyParams],
  ] as const) {
    app.get(path, { schema: { params, querystring: renderedQuery } }, (request, reply) => renderAll(ctx, request.params, request.query, request.headers.accept, reply));
  }
}

/** The rendering a query asks for, checked before anything is read. */
function renderSettings(query: z.infer<typeof renderedQuery>, kind: 'rendered' | 'thumbnail') {
  const viewport = parseViewport(query.viewport);
  const windowing = parseWindow(query.window);
  const quality = query.quality === undefined ? 90 : Number(query.quality);
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) throw new HttpError(400, 'quality must be 1 to 100');
  const annotation = annotationWarning(query.annotation);
  const box = viewport?.box ?? (kind === 'thumbnail' ? { width: THUMBNAIL_SIZE, height: THUMBNAIL_SIZE } : undefined);
  return { viewport: box, region: viewport?.region, window: windowing, quality, annotation };
}

/** The multipart accept ranges of a study or series rendered request: the image type its parts are in. */
function chooseMultipartFormat(accept: string | undefined): 'image/jpeg' | 'image/png' {
  for (const range of parseAccept(accept)) {
    const type = range.type === 'multipart/related' ? (range.params.type ?? 'image/jpeg').toLowerCase() : range.type;
    if (type === 'image/png') return 'image/png';
    if (typeMatches(type, 'image/jpeg')) return 'image/jpeg';
  }
  throw new HttpError(406, 'study and series rendered are served as multipart/related with image/jpeg or image/png parts');
}

async function renderAll(
  ctx: WebContext, scope: InstanceScope, query: z.infer<typeof renderedQuery>, accept: string | undefined, reply: FastifyReply,
): Promise<FastifyReply> {
  const format = chooseMultipartFormat(accept);
  const settings = renderSettings(query, 'rendered');
  const rows = ctx.archive.reads.storedInstances(scope);
  if (rows.length === 0) throw new HttpError(404, 'no such study or series here');
  const parts: ResponsePart[] = rows.flatMap((row) => Array.from({ length: row.numberOfFrames ?? 1 }, (_, frame) => ({ row, frame })))
    .map(({ row, frame }, i): ResponsePart => ({
      contentType: format,
      // The first part is made before the status line (a 503 can still be sent); the others continue the answer.
      bytes: () => renderCached(ctx, row, { ...settings, frame, format }, { continuing: i > 0 }),
    }));
  if (settings.annotation) reply.header('warning', settings.annotation);
  await sendMultipart(reply, format, parts,
    (error) => ctx.logger.error({ event: 'rendered-failed', ...scope, reason: (error as Error)?.message }, 'rendered response cut short'));
  return reply;
}

/** One frame rendered, through the thumbnail cache when it is thumbnail-sized (CACHED_MAX_SIDE). */
function renderCached(ctx: WebContext, row: StoredInstance, options: RenderOptions, admission?: Admission): Promise<Buffer> {
  const produce = () => ctx.images.render(ctx.archive.paths.absolute(row.path), options, admission);
  const box = options.viewport;
  if (!box || box.width > CACHED_MAX_SIDE || box.height > CACHED_MAX_SIDE) return produce();
  return ctx.thumbnails.image(row, options, produce);
}

function chooseFormat(accept: string | undefined): 'image/jpeg' | 'image/png' {
  for (const range of parseAccept(accept)) {
    if (range.type === 'image/png') return 'image/png';
    if (typeMatches(range.type, 'image/jpeg')) return 'image/jpeg';
  }
  throw new HttpError(406, 'rendered images are served as image/jpeg or image/png');
}

function numberList(text: string | undefined, name: string, count: number[]): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((s) => Number(s.trim()));
  if (!count.includes(values.length) || values.some((v) => !Number.isFinite(v))) {
    throw new HttpError(400, `${name}=${JSON.stringify(text)} must be ${count.join(' or ')} comma-separated numbers`);
  }
  return values;
}

const VOI_FUNCTIONS = ['LINEAR', 'LINEAR_EXACT', 'SIGMOID'] as const;
type VoiFunction = (typeof VOI_FUNCTIONS)[number];

/** PS3.18 8.3.5.1.4: window=center,width[,function], the function LINEAR (default), LINEAR_EXACT or SIGMOID. */
function parseWindow(text: string | undefined): { center: number; width: number; voiFunction: VoiFunction } | undefined {
  if (text === undefined) return undefined;
  const [center, width, fn = 'LINEAR', ...rest] = text.split(',').map((s) => s.trim());
  const voiFunction = fn.toUpperCase() as VoiFunction;
  const numbers = [Number(center), Number(width)];
  if (rest.length > 0 || center === undefined || width === undefined || numbers.some((v) => !Number.isFinite(v)) || !VOI_FUNCTIONS.includes(voiFunction)) {
    throw new HttpError(400, `window=${JSON.stringify(text)} must be center,width[,function] with function one of ${VOI_FUNCTIONS.join(', ')}`);
  }
  if (numbers[1]! < 1) throw new HttpError(400, `window width must be at least 1, got ${width}`);
  return { center: numbers[0]!, width: numbers[1]!, voiFunction };
}

/** PS3.18 8.3.5.1.3: viewport=vw,vh or vw,vh,sx,sy,sw,sh (the source region to show, in image pixels). */
function parseViewport(text: string | undefined): { box: { width: number; height: number }; region?: { x: number; y: number; width: number; height: number } } | undefined {
  const values = numberList(text, 'viewport', [2, 6]);
  if (!values) return undefined;
  const [vw, vh, sx, sy, sw, sh] = values as [number, number, number?, number?, number?, number?];
  const box = { width: vw, height: vh };
  if (box.width < 1 || box.height < 1 || box.width > 8192 || box.height > 8192) throw new HttpError(400, 'viewport must be 1 to 8192 pixels');
  if (sx === undefined) return { box };
  if (![sx, sy, sw, sh].every((v) => Number.isInteger(v)) || sx < 0 || sy! < 0 || sw! < 1 || sh! < 1) {
    throw new HttpError(400, `viewport=${JSON.stringify(text)}: the region sx,sy,sw,sh must be whole pixels, offsets from 0 and sizes from 1 (flipped regions are not supported)`);
  }
  return { box, region: { x: sx, y: sy!, width: sw!, height: sh! } };
}

/** PS3.18 8.3.5.1.1: annotation=patient,technique. Accepted and not drawn; the answer carries a Warning saying so. */
function annotationWarning(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((s) => s.trim().toLowerCase());
  if (values.some((v) => v !== 'patient' && v !== 'technique')) throw new HttpError(400, `annotation=${JSON.stringify(text)} must be patient and/or technique`);
  return warning(`annotation=${values.join(',')} is not supported; the image is rendered without annotation`);
}

function representative<T extends Pick<StoredInstance, 'seriesUid'>>(rows: T[], scope: { series?: string }): T | undefined {
  if (scope.series) return rows[Math.floor(rows.length / 2)];
  const firstSeries = rows[0]?.seriesUid;
  const series = rows.filter((r) => r.seriesUid === firstSeries);
  return series[Math.floor(series.length / 2)];
}

async function render(
  ctx: WebContext, params: InstanceScope & { frames?: string }, query: z.infer<typeof renderedQuery>, accept: string | undefined,
  reply: FastifyReply, kind: 'rendered' | 'thumbnail',
): Promise<FastifyReply> {
  const { frames: frameList, ...scope } = params;
  const format = chooseFormat(accept);
  // Only in the archive: the instance, or the one a thumbnail shows, is fetched first.
  if (scope.instance) await instanceHere(ctx, scope as Required<typeof scope>, clientGone(reply));
  else await representativeHere(ctx, scope, (rows) => representative(rows, scope), clientGone(reply));
  const rows = ctx.archive.reads.storedInstances(scope);
  const row = scope.instance ? rows[0] : representative(rows, scope);
  if (!row) throw new HttpError(404, 'no such study, series or instance');
  const frames = withFrameStatus(() => (frameList ? parseFrameList(frameList) : [1]));
  if (frames.length !== 1) throw new HttpError(400, 'render one frame at a time');
  const { annotation, ...settings } = renderSettings(query, kind);
  const image = await renderCached(ctx, row, { ...settings, frame: frames[0]! - 1, format });
  if (annotation) reply.header('warning', annotation);
  return reply.code(200).type(format).header('cache-control', 'private, max-age=300').send(image);
}
