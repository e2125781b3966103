import type { FastifyInstance } from 'fastify';
import type { LiveEventData, LiveEventName } from '../contract/events.js';
import type { WebContext } from './context.js';

const KEEPALIVE_MS = 15_000;

/**
 * GET /api/events: Server-Sent Events with the archive's events (the forwarder reports through them too), for
 * the live view. The events are the wire contract's (contract/events.ts), sent as the archive emits them.
 */
export function registerEvents(app: FastifyInstance, ctx: WebContext, open: Set<() => void>): void {
  app.get('/api/events', (request, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let id = 0;
    const send = <K extends LiveEventName>(name: K, payload: LiveEventData<K>) => {
      res.write(`id: ${++id}\nevent: ${name}\ndata: ${JSON.stringify(payload)}\n\n`);
    };
    res.write('retry: 2000\n\n');
    send('hello', { time: Date.now() });
    const unsubscribers = [ctx.archive.events.onAny((name, payload) => send(name, payload))];
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    const close = () => {
      clearInterval(keepalive);
      for (const off of unsubscribers) off();
      open.delete(close);
      res.end();
    };
    open.add(close);
    request.raw.on('close', close);
    ctx.logger.debug({ event: 'sse-open', peer: request.ip }, 'event stream opened');
  });
}
