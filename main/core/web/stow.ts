import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Readable } from 'node:stream';
import { tagsOf } from '../dicom/dictionary.js';
import { sniffSopUids } from '../dicom/header.js';
import type { DicomJson } from '../dicom/json-model.js';
import type { BuildResult } from '../dicom/part10-from-json.js';
import { parseMediaType } from '../multipart/media-type.js';
import { BodyTooLargeError, MalformedMultipartError, readMultipart } from '../multipart/reader.js';
import { CannotUnderstandError, IngestError, OutOfResourcesError } from '../store/errors.js';
import type { HeldReplacement, IngestResult } from '../store/archive.js';
import type { WebContext } from './context.js';
import { noParams, studyParams } from './dicomweb-params.js';
import { dicomWebBase, sendError } from './http-errors.js';
import { warning } from './read-through.js';
import { buildFromMetadataRequest, METADATA_REQUEST_MAX_BYTES, METADATA_TYPES } from './stow-metadata.js';

const FAILURE_CANNOT_UNDERSTAND = 0xc000;
const TAG = tagsOf('ReferencedSOPClassUID', 'ReferencedSOPInstanceUID', 'RetrieveURL', 'FailureReason', 'FailedSOPSequence', 'ReferencedSOPSequence');
const WRITE_BATCH_BYTES = 1024 * 1024;
const SNIFF_BYTES = 64 * 1024;
/** Parts of one request whose commit may still be running while later parts are read. */
const MAX_PARTS_IN_FLIGHT = 16;

type PartOutcome =
  | { ok: true; result: IngestResult }
  | { ok: false; failureReason: number; message: string; sopClassUid?: string; sopInstanceUid?: string };

/** A part as read: a replacement of a stored instance is held until the whole request has been read. */
type ReadOutcome = Exclude<PartOutcome, { ok: true }> | { ok: true; result: IngestResult | HeldReplacement };

/** STOW-RS (PS3.18 10.5): POST /studies and /studies/{study}, multipart/related of application/dicom parts. */
export function registerStow(server: FastifyInstance, ctx: WebContext): void {
  const app = server.withTypeProvider<ZodTypeProvider>();
  // A bad UID in the path is answered by the handler, which drains the body first: the validation is attached, not thrown.
  for (const [path, params] of [['/dicom-web/studies', noParams], ['/dicom-web/studies/:study', studyParams]] as const) {
    app.post(path, { schema: { params }, attachValidation: true }, (request, reply) => stow(ctx, request.params, request, reply));
  }
}

async function stow(ctx: WebContext, params: { study?: string }, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const body = request.body as Readable | undefined;
  const discard = () => body?.resume?.();
  if (request.validationError) {
    discard();
    throw request.validationError;
  }
  const study = params.study;
  const contentType = parseMediaType(request.headers['content-type'] ?? '');
  if (!contentType || contentType.type !== 'multipart/related') {
    discard();
    return sendError(reply, 415, `expected multipart/related; type="application/dicom", got ${JSON.stringify(request.headers['content-type'] ?? '')}`);
  }
  const partType = (contentType.params.type ?? 'application/dicom').toLowerCase();
  if (partType !== 'application/dicom' && !METADATA_TYPES.has(partType)) {
    discard();
    return sendError(reply, 415, `type="application/dicom", "application/dicom+json" or "application/dicom+xml" is accepted, got ${JSON.stringify(partType)}`);
  }
  const boundary = contentType.params.boundary;
  if (!boundary) {
    discard();
    return sendError(reply, 400, 'multipart/related content type has no boundary parameter');
  }
  // A metadata request is held in memory until its data sets are built (stow-metadata.ts), hence its own bound.
  const maxBytes = METADATA_TYPES.has(partType)
    ? Math.min(ctx.settings().http.maxRequestBytes, METADATA_REQUEST_MAX_BYTES)
    : ctx.settings().http.maxRequestBytes;
  const declared = Number(request.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    reply.header('connection', 'close');
    return sendError(reply, 413, `request body of ${declared} bytes exceeds the limit of ${maxBytes}`);
  }
  if (!body) return sendError(reply, 400, 'empty request body');

  const peer = request.ip;
  // Parts are read one after another from the socket, but a part's fsync and index commit overlap the
  // reading of the next ones (bounded), so one request keeps the disk and the group commit busy.
  const pending: Array<Promise<ReadOutcome>> = [];
  let failure: unknown;
  try {
    if (METADATA_TYPES.has(partType)) {
      const metadata = await buildFromMetadataRequest(body, boundary, maxBytes, partType);
      for (const result of metadata.results()) {
        const outcome = storeBuilt(ctx, result, { peer, study });
        outcome.catch(() => undefined);
        pending.push(outcome);
        if (pending.length >= MAX_PARTS_IN_FLIGHT) await pending[pending.length - MAX_PARTS_IN_FLIGHT];
      }
      const unreferenced = metadata.unreferenced();
      if (unreferenced.length > 0) {
        ctx.logger.warn({ event: 'stow-bulk-unreferenced', peer, locations: unreferenced }, 'bulk data parts no data set refers to were ignored');
      }
    } else for await (const part of readMultipart(body, boundary, { maxBytes })) {
      const { consumed, outcome } = storePart(ctx, part, { peer, study });
      outcome.catch(() => undefined);
      pending.push(outcome);
      await consumed;
      if (pending.length >= MAX_PARTS_IN_FLIGHT) await pending[pending.length - MAX_PARTS_IN_FLIGHT];
    }
  } catch (error) {
    failure = error;
  }
  const settled = await Promise.allSettled(pending);
  const read = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  failure ??= settled.find((s) => s.status === 'rejected')?.reason;
  if (failure) {
    const stored = read.flatMap((o) => (o.ok && o.result.outcome === 'stored' ? [o.result.header.sopInstanceUid] : []));
    // Nothing of a request we refuse is kept: the instances it newly added go again, and the ones it
    // would have replaced stay as they were.
    for (const outcome of read) if (outcome.ok && outcome.result.outcome === 'held') await outcome.result.drop();
    for (const uid of stored) await ctx.archive.removeInstance(uid);
    if (failure instanceof BodyTooLargeError) {
      reply.header('connection', 'close');
      return sendError(reply, 413, failure.message);
    }
    if (failure instanceof MalformedMultipartError) {
      ctx.logger.warn({ event: 'stow-malformed', peer, reason: failure.message, removed: stored.length }, 'malformed STOW-RS body');
      return sendError(reply, 400, `malformed multipart/related body: ${failure.message}`);
    }
    // A client that hangs up is an everyday event at a clinic, not a fault of ours; nobody reads the answer.
    if (request.raw.readableAborted) {
      ctx.logger.warn({ event: 'stow-aborted', peer, reason: (failure as Error)?.message ?? String(failure), removed: stored.length },
        'the client closed the connection during a STOW-RS request');
      return sendError(reply, 400, 'the request body ended early: the client closed the connection');
    }
    throw failure;
  }
  if (read.length === 0) return sendError(reply, 400, 'multipart/related body has no parts');
  const outcomes: PartOutcome[] = [];
  for (const outcome of read) {
    if (!outcome.ok) outcomes.push(outcome);
    else if (outcome.result.outcome === 'held') outcomes.push(await commitHeld(outcome.result));
    else outcomes.push({ ok: true, result: outcome.result });
  }

  // The Failure Reason codes say little; a Warning (PS3.18 8.3.4.4) per refused instance says why.
  const refusals = outcomes.flatMap((o) => (o.ok ? [] : [warning(`${o.sopInstanceUid ?? 'instance'}: ${o.message}`.slice(0, 512))]));
  if (refusals.length > 0) reply.header('warning', refusals.slice(0, 20));
  const base = dicomWebBase(request);
  const response = stowResponse(outcomes, base, study);
  const good = outcomes.filter((o) => o.ok).length;
  const status = good === outcomes.length ? 200 : good === 0 ? 409 : 202;
  ctx.logger.info({ event: 'stow', peer, studyUid: study, parts: outcomes.length, stored: good, status }, 'STOW-RS request done');
  return reply.code(status).type('application/dicom+json').send(response);
}

/** Puts a held replacement in place, now that the request it came with is known to be whole. */
async function commitHeld(held: HeldReplacement): Promise<PartOutcome> {
  try {
    return { ok: true, result: await held.commit() };
  } catch (error) {
    const failure = error instanceof IngestError ? error : new OutOfResourcesError(String(error));
    return {
      ok: false, failureReason: failure.failureReason, message: failure.message,
      sopClassUid: held.header.sopClassUid, sopInstanceUid: held.header.sopInstanceUid,
    };
  }
}

function storePart(
  ctx: WebContext,
  part: { headers: Record<string, string>; body: AsyncIterable<Buffer>; drain(): Promise<void> },
  context: { peer: string; study?: string },
): { consumed: Promise<void>; outcome: Promise<ReadOutcome> } {
  let markConsumed!: () => void;
  let failConsumed!: (error: unknown) => void;
  const consumed = new Promise<void>((resolve, reject) => {
    markConsumed = resolve;
    failConsumed = reject;
  });
  const partType = parseMediaType(part.headers['content-type'] ?? 'application/dicom');
  if (!partType || partType.type !== 'application/dicom') {
    const outcome = part.drain().then(
      (): PartOutcome => {
        markConsumed();
        return { ok: false, failureReason: FAILURE_CANNOT_UNDERSTAND, message: `part of type ${part.headers['content-type']} is not application/dicom` };
      },
      (error) => {
        failConsumed(error);
        throw error;
      },
    );
    return { consumed, outcome };
  }
  const sniff: Buffer[] = [];
  let sniffed = 0;
  let malformed: unknown;
  // Chunks go to ingest in batches of about WRITE_BATCH_BYTES, one writev each, instead of one write per
  // socket chunk. The parser hands over its buffers (it never reuses them), as ingest's batch contract asks.
  async function* tap(): AsyncGenerator<Buffer[]> {
    try {
      let batch: Buffer[] = [];
      let batchBytes = 0;
      for await (const chunk of part.body) {
        if (sniffed < SNIFF_BYTES) {
          sniff.push(chunk.subarray(0, SNIFF_BYTES - sniffed));
          sniffed += Math.min(chunk.length, SNIFF_BYTES - sniffed);
        }
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH_BYTES) {
          yield batch;
          batch = [];
          batchBytes = 0;
        }
      }
      if (batch.length > 0) yield batch;
      markConsumed();
    } catch (error) {
      malformed = error;
      failConsumed(error);
      throw error;
    }
  }
  const outcome = (async (): Promise<ReadOutcome> => {
    try {
      const result = await ctx.archive.ingestOrHold(tap(), {
        callingAe: 'STOW-RS',
        peer: context.peer,
        expect: context.study ? { studyInstanceUid: context.study } : undefined,
      });
      return { ok: true, result };
    } catch (error) {
      if (malformed) throw malformed;
      try {
        await part.drain();
        markConsumed();
      } catch (drainError) {
        failConsumed(drainError);
        throw drainError;
      }
      const failure = error instanceof IngestError ? error : new OutOfResourcesError(String(error));
      const ids = sniffSopUids(Buffer.concat(sniff));
      return {
        ok: false,
        failureReason: failure instanceof CannotUnderstandError ? FAILURE_CANNOT_UNDERSTAND : failure.failureReason,
        message: failure.message,
        ...ids,
      };
    }
  })();
  return { consumed, outcome };
}

/** An instance built from metadata and bulk data goes through the same durable ingest as a Part 10 part. */
async function storeBuilt(ctx: WebContext, built: BuildResult, context: { peer: string; study?: string }): Promise<ReadOutcome> {
  if (!built.ok) {
    ctx.logger.warn({ event: 'stow-instance-refused', peer: context.peer, sopInstanceUid: built.sopInstanceUid, reason: built.message },
      'STOW-RS metadata data set refused');
    return built;
  }
  try {
    const result = await ctx.archive.ingestOrHold((async function* () {
      yield [built.bytes];
    })(), { callingAe: 'STOW-RS', peer: context.peer, expect: context.study ? { studyInstanceUid: context.study } : undefined });
    return { ok: true, result };
  } catch (error) {
    const failure = error instanceof IngestError ? error : new OutOfResourcesError(String(error));
    return {
      ok: false,
      failureReason: failure instanceof CannotUnderstandError ? FAILURE_CANNOT_UNDERSTAND : failure.failureReason,
      message: failure.message, sopClassUid: built.sopClassUid, sopInstanceUid: built.sopInstanceUid,
    };
  }
}

function stowResponse(outcomes: PartOutcome[], base: string, study: string | undefined): DicomJson {
  const referenced: DicomJson[] = [];
  const failed: DicomJson[] = [];
  const studies = new Set<string>();
  for (const outcome of outcomes) {
    if (outcome.ok) {
      const h = outcome.result.header;
      studies.add(h.studyInstanceUid);
      referenced.push({
        [TAG.ReferencedSOPClassUID]: { vr: 'UI', Value: [h.sopClassUid] },
        [TAG.ReferencedSOPInstanceUID]: { vr: 'UI', Value: [h.sopInstanceUid] },
        [TAG.RetrieveURL]: {
          vr: 'UR',
          Value: [`${base}/studies/${h.studyInstanceUid}/series/${h.seriesInstanceUid}/instances/${h.sopInstanceUid}`],
        },
      });
    } else {
      failed.push({
        [TAG.ReferencedSOPClassUID]: outcome.sopClassUid ? { vr: 'UI', Value: [outcome.sopClassUid] } : { vr: 'UI' },
        [TAG.ReferencedSOPInstanceUID]: outcome.sopInstanceUid ? { vr: 'UI', Value: [outcome.sopInstanceUid] } : { vr: 'UI' },
        [TAG.FailureReason]: { vr: 'US', Value: [outcome.failureReason] },
      });
    }
  }
  const response: DicomJson = {};
  const studyUrl = study ?? (studies.size === 1 ? [...studies][0] : undefined);
  if (studyUrl) response[TAG.RetrieveURL] = { vr: 'UR', Value: [`${base}/studies/${studyUrl}`] };
  if (failed.length > 0) response[TAG.FailedSOPSequence] = { vr: 'SQ', Value: failed };
  if (referenced.length > 0) response[TAG.ReferencedSOPSequence] = { vr: 'SQ', Value: referenced };
  return response;
}
