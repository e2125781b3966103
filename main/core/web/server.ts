import fastifyCors from '@fastify/cors';
import Fastify, { type FastifyError, type FastifyInstance, type FastifySchema } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors, isResponseSerializationError, serializerCompiler, validatorCompiler, type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { API_ROUTES } from '../contract/api/routes.js';
import { checkAccess, crossSiteReason, misdirectedHostReason, sameSecret, sessionCookie, type AccessSettings } from './access.js';
import { registerApi, SettingsRejected } from './api.js';
import { requestTimeoutResponse, watchBodyIdle } from './body-idle.js';
import { registerCloudApi } from './cloud-api.js';
import { registerCapabilities } from './capabilities.js';
import { registerWorkflowApi } from './workflow-api.js';
import type { WebContext } from './context.js';
import { registerDelete } from './delete.js';
import { registerEvents } from './events.js';
import { HttpError } from './http-errors.js';
import { registerMediaParameters } from './media-parameters.js';
import { registerQido } from './qido.js';
import { registerAccessTimes } from './read-through.js';
import { registerRendered } from './rendered.js';
import { CONTENT_SECURITY_POLICY, registerStaticUi } from './static-ui.js';
import { registerStow } from './stow.js';
import { registerWadoInstance } from './wado-instance.js';
import { registerWadoRetrieve } from './wado-retrieve.js';
import { registerBulkRetrieve } from './wado-bulk.js';
import { registerWadoUri } from './wado-uri.js';

const JSON_BODY_LIMIT = 1024 * 1024;

/** A route as registered: the route walk test holds every /api one to the wire contract. */
export interface RegisteredRoute {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
}

export interface BuiltServer {
  app: FastifyInstance;
  /** Every route the server answers, in registration order. */
  routes: readonly RegisteredRoute[];
  /** Ends open event streams so close() does not wait on them. */
  closeStreams(): void;
}

export async function buildServer(
  ctx: WebContext, access: AccessSettings, extraRoutes: Array<(app: FastifyInstance) => void> = [], tls?: { key: string; cert: string },
): Promise<BuiltServer> {
  const { requestTimeoutMs } = ctx.settings().http;
  const serverOptions = {
    requestTimeout: requestTimeoutMs,
    // Node refuses a headers timeout longer than the request timeout, and checks both at this interval.
    headersTimeout: Math.min(60_000, requestTimeoutMs),
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.floor(requestTimeoutMs / 4))),
  };
  // Fastify types an HTTPS server apart; the routes and hooks are the same, so it is used as the plain one.
  const app = Fastify({
    ...(tls ? { https: { ...serverOptions, key: tls.key, cert: tls.cert } } : { http: serverOptions }),
    logger: false,
    bodyLimit: JSON_BODY_LIMIT,
    routerOptions: { maxParamLength: 1024 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // A request that has not arrived in full within this gets 408 and its connection is closed.
    requestTimeout: requestTimeoutMs,
  }) as unknown as FastifyInstance;

  // First, before the access check: an upload that stalls holds its connection whoever sends it.
  app.addHook('onRequest', (request, reply, done) => {
    const idleMs = ctx.settings().http.bodyIdleTimeoutMs;
    watchBodyIdle(request.raw, idleMs, () => {
      ctx.logger.warn({ event: 'http-body-stalled', peer: request.ip, url: request.url.split('?')[0], idleMs }, 'request body stalled; connection closed');
      const socket = request.raw.socket;
      if (socket.writable && !reply.raw.headersSent) socket.write(requestTimeoutResponse(`the request body sent nothing for ${idleMs} ms`));
      socket.destroy();
    });
    done();
  });
  // Route schemas are zod (the wire contract's for /api): they validate requests and check answers on the way out.
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const routes: RegisteredRoute[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, schema: route.schema });
  });

  // DICOM bodies are streamed to their handler (STOW parses multipart/related itself); any other
  // type also reaches the handler, which answers 415 with a precise reason.
  app.addContentTypeParser('multipart/related', (_request, payload, done) => done(null, payload));
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  app.addHook('onRequest', async (request, reply) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    const url = new URL(request.url, 'http://local');
    const misdirected = misdirectedHostReason(access, request.headers.host);
    if (misdirected) {
      ctx.logger.warn({ event: 'host-refused', peer: request.ip, reason: misdirected, url: url.pathname }, 'request for another host refused');
      return reply.code(421).send({ status: 421, error: misdirected });
    }
    const token = url.searchParams.get('token');
    if (token !== null && (request.method === 'GET' || request.method === 'HEAD')) {
      if (!sameSecret(token, access.sessionToken)) {
        ctx.logger.warn({ event: 'auth-failed', peer: request.ip, reason: 'wrong token in URL', url: url.pathname }, 'access refused');
        return reply.code(401).send({ status: 401, error: 'wrong token' });
      }
      url.searchParams.delete('token');
      const target = url.pathname === '/api/session' ? '/' : `${url.pathname}${url.search}`;
      return reply.code(303).header('set-cookie', sessionCookie(access.sessionToken, request.protocol === 'https')).header('location', target).send();
    }
    const decision = await checkAccess(access, { authorization: request.headers.authorization, cookie: request.headers.cookie });
    if (decision.ok && decision.via === 'cookie') {
      const crossSite = crossSiteReason(access, request);
      if (crossSite) {
        ctx.logger.warn({ event: 'cross-site-refused', peer: request.ip, reason: crossSite, url: url.pathname }, 'cross-site request refused');
        return reply.code(403).send({ status: 403, error: `cross-site request refused: ${crossSite}` });
      }
    }
    if (decision.ok) return;
    ctx.logger.warn({ event: 'auth-failed', peer: request.ip, reason: decision.reason, url: url.pathname }, 'access refused');
    reply.header('www-authenticate', access.basicAuth ? 'Bearer realm="DICOM Edge", Basic realm="DICOM Edge"' : 'Bearer realm="DICOM Edge"');
    return reply.code(401).send({ status: 401, error: `authentication required: ${decision.reason}` });
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error instanceof SettingsRejected) return reply.code(400).send({ status: 400, error: 'invalid settings', problems: error.problems });
    if (error instanceof HttpError) {
      if (error.status >= 500) ctx.logger.error({ event: 'http-error', peer: request.ip, url: request.url, reason: error.message }, 'request failed');
      return reply.code(error.status).headers(error.headers).send({ status: error.status, error: error.message });
    }
    // A request off its route's schema: the messages name the parameter (see contract/api/common.ts).
    if (hasZodFastifySchemaValidationErrors(error)) {
      return reply.code(400).send({ status: 400, error: error.validation.map((problem) => problem.message).join('; ') });
    }
    if (isResponseSerializationError(error)) {
      // An answer off the contract is a bug here, never something to send: log what did not fit.
      ctx.logger.error({ event: 'http-answer-off-contract', peer: request.ip, url: request.url, problems: error.cause.issues }, 'answer does not fit its schema');
      return reply.code(500).send({ status: 500, error: 'internal error; see the appliance log' });
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send({ status: 413, error: error.message });
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ status: error.statusCode, error: error.message });
    }
    ctx.logger.error({ event: 'http-error', peer: request.ip, url: request.url, reason: error.message, stack: error.stack }, 'request failed');
    return reply.code(500).send({ status: 500, error: 'internal error; see the appliance log' });
  });

  const origins = ctx.settings().http.corsOrigins;
  if (origins.length > 0) await app.register(fastifyCors, { origin: origins, credentials: false, exposedHeaders: ['etag', 'content-location'] });

  const streams = new Set<() => void>();
  registerAccessTimes(app, ctx);
  registerMediaParameters(app);
  registerQido(app, ctx);
  registerStow(app, ctx);
  registerWadoRetrieve(app, ctx);
  registerWadoInstance(app, ctx);
  registerBulkRetrieve(app, ctx);
  registerRendered(app, ctx);
  registerWadoUri(app, ctx);
  registerCapabilities(app);
  registerDelete(app, ctx);
  registerApi(app, ctx);
  registerCloudApi(app, ctx);
  registerWorkflowApi(app, ctx);
  registerEvents(app, ctx, streams);
  for (const add of extraRoutes) add(app);
  app.withTypeProvider<ZodTypeProvider>().get('/api/session', { schema: API_ROUTES['GET /api/session'] }, async (_request, reply) => reply.code(204).send());
  await registerStaticUi(app, ctx.staticDir);
  return { app, routes, closeStreams: () => [...streams].forEach((close) => close()) };
}
