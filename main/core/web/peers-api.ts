import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { API_ROUTES } from '../contract/api/routes.js';
import { describeIssues } from '../contract/settings-problems.js';
import { peerSchema, type Settings } from '../contract/settings.js';
import type { EchoFunction, EchoTarget } from '../verification.js';
import { HttpError } from './http-errors.js';

const ECHO_TIMEOUT_MS = 5_000;

export interface PeersApiOptions {
  settings(): Settings;
  logger: Logger;
  echo: EchoFunction;
}

/** `POST /api/peers/echo`: C-ECHO to a configured peer (`{aeTitle}`) or to an ad-hoc `{aeTitle, host, port}`. */
export function registerPeersApi(app: FastifyInstance, options: PeersApiOptions): void {
  app.withTypeProvider<ZodTypeProvider>().post('/api/peers/echo', { schema: API_ROUTES['POST /api/peers/echo'] }, async (request) => {
    const target = echoTarget(request.body, options.settings());
    const callingAe = options.settings().aeTitle;
    const timeoutMs = Math.min(ECHO_TIMEOUT_MS, options.settings().dimse.artimTimeoutMs);
    const outcome = await options.echo(target, { callingAe, timeoutMs });
    const line = { event: 'c-echo-scu', peer: `${target.aeTitle}@${target.host}:${target.port}`, callingAe, requestedBy: request.ip, ...outcome };
    if (outcome.ok) options.logger.info(line, 'C-ECHO to peer succeeded');
    else options.logger.warn(line, 'C-ECHO to peer failed');
    return outcome;
  });
}

/** The body is an object with an AE title (the route's schema); with host or port it is a whole peer. */
function echoTarget(given: { aeTitle: string; [key: string]: unknown }, settings: Settings): EchoTarget {
  if (given.host === undefined && given.port === undefined) {
    const peer = settings.peers.find((p) => p.aeTitle === given.aeTitle);
    if (!peer) throw new HttpError(404, `no configured peer with AE title ${JSON.stringify(given.aeTitle)}; give host and port to test an unsaved one`);
    return { aeTitle: peer.aeTitle, host: peer.host, port: peer.port };
  }
  const parsed = peerSchema.safeParse(given);
  if (!parsed.success) throw new HttpError(400, `invalid peer: ${describeIssues(parsed.error, given).join('; ')}`);
  return { aeTitle: parsed.data.aeTitle, host: parsed.data.host, port: parsed.data.port };
}
