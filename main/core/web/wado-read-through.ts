/**
 * WADO-RS retrieve (study, series, instance) of data not all here: the answer streams while the archive's
 * instances are written through the ingest. Instances already here go first; when this request starts the
 * fetch, the archive's parts are passed on as their bytes arrive (in the syntax the archive sent, when the
 * Accept header allows it), and otherwise each fetched one is written as a part as soon as it is committed.
 * The status line waits for the first instance, so a read the archive
 * cannot serve at all gets a proper status (404, 502, 503, 504); one that fails later is cut short (no
 * closing boundary), which a client sees as an incomplete answer, and the next request fetches the rest.
 */
import { createReadStream } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { InstanceScope, ReadThrough, Retrieved } from '../cloud/read-through.js';
import type { WebContext } from './context.js';
import { HttpError } from './http-errors.js';
import type { MediaType } from '../multipart/media-type.js';
import { newBoundary } from '../multipart/writer.js';
import { drainedOrClosed } from '../runtime/drained-or-closed.js';
import { archiveHttpError, clientGone } from './read-through.js';

export type Negotiate = (accept: MediaType[], stored: string) => { syntax: string; convert: boolean } | undefined;

function describe(scope: InstanceScope): string {
  return scope.sopInstanceUid ? `instance ${scope.sopInstanceUid}` : scope.seriesUid ? `series ${scope.seriesUid}` : `study ${scope.studyUid}`;
}

export async function sendThroughArchive(
  ctx: WebContext, readThrough: ReadThrough, scope: InstanceScope, accept: MediaType[], negotiate: Negotiate,
  request: FastifyRequest, reply: FastifyReply,
): Promise<FastifyReply> {
  const what = describe(scope);
  // What the index already knows of the syntaxes: refuse before fetching anything we could not deliver.
  for (const known of readThrough.known(scope)) {
    if (known.transferSyntaxUid !== '' && !negotiate(accept, known.transferSyntaxUid)) {
      throw new HttpError(406, `instance ${known.sopInstanceUid} is stored as ${known.transferSyntaxUid}; ` +
        'the Accept header allows neither that nor a syntax we can convert it to (ask for transfer-syntax=*)');
    }
  }
  const signal = clientGone(reply);
  const accepts = (syntax: string) => negotiate(accept, syntax)?.convert === false;
  const instances = readThrough.stream(scope, { signal, accepts })[Symbol.asyncIterator]();
  let next: IteratorResult<Retrieved>;
  try {
    next = await instances.next();
  } catch (error) {
    throw archiveHttpError(error, what);
  }
  if (next.done) throw new HttpError(404, `${what} is neither here nor in the archive`);
  const first = next.value;
  if ('instance' in first && !negotiate(accept, first.instance.transferSyntaxUid)) {
    // The fetch goes on for whoever else follows it; this client asked for a syntax we cannot give.
    await instances.return?.(undefined).catch(() => undefined);
    throw new HttpError(406, `instance ${first.instance.sopInstanceUid} is stored as ${first.instance.transferSyntaxUid}; ` +
      'the Accept header allows neither that nor a syntax we can convert it to (ask for transfer-syntax=*)');
  }

  const log = ctx.logger.child({ peer: request.ip, studyUid: scope.studyUid });
  const boundary = newBoundary();
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string | number | string[]>),
    'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
  });
  let parts = 0;
  try {
    while (!next.done) {
      const head = (syntax: string) => Buffer.from(`${parts === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/dicom; transfer-syntax=${syntax}\r\n\r\n`, 'latin1');
      const item = next.value;
      if ('live' in item) {
        // Offered only in a syntax the Accept header takes as it is.
        await write(res, head(item.live.transferSyntax));
        for await (const chunk of item.live.body) await write(res, chunk);
      } else {
        const instance = item.instance;
        const delivery = negotiate(accept, instance.transferSyntaxUid);
        if (!delivery) throw new Error(`instance ${instance.sopInstanceUid} arrived as ${instance.transferSyntaxUid}, which the Accept header does not allow`);
        await write(res, head(delivery.syntax));
        const path = ctx.archive.paths.absolute(instance.path);
        // The status line is out: a conversion here continues the answer.
        if (delivery.convert) await write(res, await ctx.images.explicitLittleEndian(path, instance.transferSyntaxUid, { continuing: true }));
        else for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) await write(res, chunk as Buffer);
      }
      parts++;
      next = await instances.next();
    }
    res.end(`\r\n--${boundary}--\r\n`);
    log.debug({ event: 'wado-read-through', scope, parts }, 'WADO-RS answered through the archive');
  } catch (error) {
    res.destroy();
    await instances.return?.(undefined).catch(() => undefined);
    if (!signal.aborted) {
      log.warn({ event: 'wado-read-through-cut', scope, parts, reason: (error as Error).message }, 'WADO-RS answer through the archive cut short');
    }
  }
  return reply;
}

/**
 * What may wait in the response's buffers before a write waits for them to drain: the socket's own mark (16 KB)
 * is less than one chunk of the archive's answer, and waiting at it would send the answer chunk by chunk.
 */
const WRITE_AHEAD_BYTES = 1024 * 1024;

const clientWentAway = () => new Error('the client went away');

/** res.write with backpressure; rejects once the client is gone. Runs for every chunk of a study: see drainedOrClosed. */
function write(res: FastifyReply['raw'], bytes: Uint8Array): Promise<void> | void {
  if (res.destroyed) throw clientWentAway();
  if (res.write(bytes) || res.writableLength <= WRITE_AHEAD_BYTES) return;
  return drainedOrClosed(res, clientWentAway);
}
