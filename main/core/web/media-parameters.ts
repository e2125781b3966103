/**
 * The `accept` and `charset` query parameters of PS3.18 8.3.3.1 and 8.3.3.2, for clients that cannot set
 * headers (a link in a browser, an EHR that stores URLs). `accept` stands in for the Accept header and wins
 * over it; `charset` must allow UTF-8, the one character set our responses are written in.
 */
import type { FastifyInstance } from 'fastify';
import { HttpError } from './http-errors.js';

/** The query parameters this module takes; the routes leave them out of anything else they parse. */
export const MEDIA_PARAMETERS: ReadonlySet<string> = new Set(['accept', 'charset']);

const DICOMWEB_PATH = /^\/(dicom-web|wado)(\/|\?|$)/;

/** Whether a charset list (`utf-8, iso-8859-1;q=0.5`) allows UTF-8. A q of 0 refuses it. */
function allowsUtf8(list: string): boolean {
  return list.split(',').some((item) => {
    const [name = '', ...params] = item.split(';').map((part) => part.trim().toLowerCase());
    const q = params.find((p) => p.startsWith('q='));
    return (name === 'utf-8' || name === 'utf8' || name === '*') && (q === undefined || Number(q.slice(2)) > 0);
  });
}

export function registerMediaParameters(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    if (!DICOMWEB_PATH.test(request.url)) return;
    const url = new URL(request.url, 'http://local');
    const accept = url.searchParams.getAll('accept');
    if (accept.length > 0) request.headers.accept = accept.join(', ');
    const charset = url.searchParams.getAll('charset');
    if (charset.length > 0 && !allowsUtf8(charset.join(','))) {
      throw new HttpError(406, `charset=${charset.join(',')} does not allow UTF-8, the only character set these responses are written in`);
    }
  });
}
