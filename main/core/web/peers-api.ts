import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
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
  app.post('/api/peers/echo', async (request) => {
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

function echoTarget(body: unknown, settings: Settings): EchoTarget {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'the body must be a JSON object: {"aeTitle"} of a configured peer, or {"aeTitle","host","port"}');
  }
  const given = body as Record<string, unknown>;
  if (given.host === undefined && given.port === undefined) {
    if (typeof given.aeTitle !== 'string') throw new HttpError(400, 'aeTitle (a string) is required');
    const peer = settings.peers.find((p) => p.aeTitle === given.aeTitle);
    if (!peer) throw new HttpError(404, `no configured peer with AE title ${JSON.stringify(given.aeTitle)}; give host and port to test an unsaved one`);
    return { aeTitle: peer.aeTitle, host: peer.host, port: peer.port };
  }
  const parsed = peerSchema.safeParse(body);
  if (!parsed.success) throw new HttpError(400, `invalid peer: ${describeIssues(parsed.error, body).join('; ')}`);
  return { aeTitle: parsed.data.aeTitle, host: parsed.data.host, port: parsed.data.port };
}
