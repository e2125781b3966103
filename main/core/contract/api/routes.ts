/**
 * Every /api route, keyed "METHOD /path" as fastify registers it, with the schemas of its request and
 * of its answers. The server declares exactly these on its routes (validation, serialization and the
 * handlers' types); the window calls through the same table and parses the answers with it.
 * test/integration/api-contract.test.ts walks the server's routes against this table.
 */
import { CLOUD_API_ROUTES } from '../cloud.js';
import { z } from 'zod';
import { liveEventSchemas } from '../events.js';
import { studyParamsSchema } from './common.js';
import {
  actionResultSchema, connectionTestRequestSchema, connectionTestResultSchema, destinationParamsSchema, destinationStatusSchema,
  deviceCodeStatusSchema,
} from './destinations.js';
import { echoOutcomeSchema, echoRequestSchema } from './peers.js';
import { maskedSettingsSchema, settingsWriteResultSchema, settingsWriteSchema } from './settings.js';
import { applianceInfoSchema, healthSchema, outboxSummarySchema, readinessSchema } from './status.js';
import {
  failureDetailSchema, failureParamsSchema, failuresPageSchema, failuresQuerySchema, studyActionQuerySchema, studySyncDetailSchema,
  studySyncListSchema, studySyncQuerySchema, syncQuerySchema,
} from './sync.js';
import { openCommitmentsSchema } from './commitments.js';
import { worklistItemInputSchema, worklistItemSchema, worklistListSchema, worklistParamsSchema, worklistQuerySchema } from './worklist.js';

export interface RouteContract {
  params?: z.ZodType;
  querystring?: z.ZodType;
  body?: z.ZodType;
  /** By status code. Errors (4xx, 5xx) answer common.ts's errorBodySchema. */
  response: Partial<Record<number, z.ZodType>>;
}

/** A route that answers with a stream of live events instead of one body. */
export interface EventStreamContract {
  response: Record<never, never>;
  events: typeof liveEventSchemas;
}

const destinationAction = { params: destinationParamsSchema, response: { 200: actionResultSchema } } as const;
const failureAction = { params: failureParamsSchema, response: { 200: actionResultSchema } } as const;
const studyAction = { params: studyParamsSchema, querystring: studyActionQuerySchema, response: { 200: actionResultSchema } } as const;

export const API_ROUTES = {
  'GET /api/health': { response: { 200: healthSchema } },
  'GET /api/ready': { response: { 200: readinessSchema, 503: readinessSchema } },
  'GET /api/info': { response: { 200: applianceInfoSchema } },
  'GET /api/outbox': { response: { 200: outboxSummarySchema } },
  'GET /api/sync': { querystring: syncQuerySchema, response: { 200: studySyncListSchema } },
  'GET /api/studies/:study/sync': { params: studyParamsSchema, querystring: studySyncQuerySchema, response: { 200: studySyncDetailSchema } },
  'POST /api/studies/:study/retry': studyAction,
  'POST /api/studies/:study/cancel': studyAction,
  'POST /api/studies/:study/overwrite': studyAction,
  'GET /api/failures': { querystring: failuresQuerySchema, response: { 200: failuresPageSchema } },
  'GET /api/failures/:id': { params: failureParamsSchema, response: { 200: failureDetailSchema } },
  'POST /api/failures/:id/retry': failureAction,
  'POST /api/failures/:id/cancel': failureAction,
  'POST /api/failures/:id/overwrite': failureAction,
  'GET /api/destinations': { response: { 200: z.array(destinationStatusSchema) } },
  'POST /api/destinations/:name/pause': destinationAction,
  'POST /api/destinations/:name/resume': destinationAction,
  'POST /api/destinations/:name/retry': destinationAction,
  'POST /api/destinations/:name/cancel': destinationAction,
  'POST /api/destinations/:name/test': { params: destinationParamsSchema, body: connectionTestRequestSchema, response: { 200: connectionTestResultSchema } },
  'POST /api/destinations/:name/sign-in': { params: destinationParamsSchema, response: { 200: deviceCodeStatusSchema } },
  'GET /api/destinations/:name/sign-in': { params: destinationParamsSchema, response: { 200: deviceCodeStatusSchema } },
  'GET /api/settings': { response: { 200: maskedSettingsSchema } },
  'PUT /api/settings': { body: settingsWriteSchema, response: { 200: settingsWriteResultSchema } },
  'POST /api/peers/echo': { body: echoRequestSchema, response: { 200: echoOutcomeSchema } },
  'GET /api/commitments': { response: { 200: openCommitmentsSchema } },
  'GET /api/worklist': { querystring: worklistQuerySchema, response: { 200: worklistListSchema } },
  'POST /api/worklist': { body: worklistItemInputSchema, response: { 201: worklistItemSchema } },
  'PUT /api/worklist/:id': { params: worklistParamsSchema, body: worklistItemInputSchema, response: { 200: worklistItemSchema } },
  /** Cancels a SCHEDULED item (it stays listed, CANCELED). */
  'DELETE /api/worklist/:id': { params: worklistParamsSchema, response: { 200: worklistItemSchema } },
  ...CLOUD_API_ROUTES,
  /** Opens the live event stream (text/event-stream). */
  'GET /api/events': { response: {}, events: liveEventSchemas },
  /** 204 for a valid session; with ?token=… it sets the session cookie and redirects to the UI (303). */
  'GET /api/session': { response: { 204: z.void() } },
} as const satisfies Record<string, RouteContract | EventStreamContract>;

export type ApiRoute = keyof typeof API_ROUTES;

/** The route's answer on success, as the handler returns it and the window receives it. */
export type ApiAnswer<K extends ApiRoute> = (typeof API_ROUTES)[K]['response'] extends { 200: infer S extends z.ZodType } ? z.output<S> : never;
