import { existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** The page's allowed sources: only this origin; wasm and workers for the viewer's codecs. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "worker-src 'self' blob:",
  "font-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * The image loader's decode worker only: its WebAssembly codecs (libjpeg-turbo, CharLS, OpenJPEG) are
 * Emscripten embind builds that create their glue with `new Function`. A worker served from its own URL
 * runs under the policy of its own response, so eval is allowed there, with no DOM, and never in the page.
 */
const DECODE_WORKER_CSP = [
  "default-src 'none'",
  "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'",
  // The codecs' wasm binaries are embedded as data: URIs, which Emscripten fetch()es.
  "connect-src 'self' data:",
].join('; ');
const DECODE_WORKER_PATH = /^\/assets\/index\.worker\.bundle\.min\.worker-[\w-]+\.js$/;

const NOT_BUILT_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DICOM Edge</title></head>
<body><h1>DICOM Edge</h1>
<p>The user interface is not built. Run <code>npm run build</code> to build it into <code>dist/renderer</code>.</p>
<p>The DICOMweb service is at <a href="/dicom-web/studies">/dicom-web</a> and the status API at <a href="/api/info">/api</a>.</p>
</body></html>`;

/** Serves the built renderer at `/`, or a plain page saying it is not built. */
export async function registerStaticUi(app: FastifyInstance, staticDir: string): Promise<void> {
  if (existsSync(join(staticDir, 'index.html'))) {
    await app.register(fastifyStatic, { root: staticDir, prefix: '/', index: ['index.html'], wildcard: true });
    app.addHook('onSend', async (request, reply, payload) => {
      if (DECODE_WORKER_PATH.test(request.url.split('?')[0]!)) reply.header('content-security-policy', DECODE_WORKER_CSP);
      return payload;
    });
    return;
  }
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(NOT_BUILT_PAGE));
  app.get('/index.html', async (_request, reply) => reply.type('text/html; charset=utf-8').send(NOT_BUILT_PAGE));
}
