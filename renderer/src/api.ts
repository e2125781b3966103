/**
 * Every HTTP call the renderer makes lives here. /api goes through the wire contract's route table
 * (main/core/contract/api/routes.ts), the one the server declares on its routes: each answer is parsed
 * with the route's schema, so a server that drifts from the contract fails loudly here.
 * Auth: the Electron preload hands a Bearer token; a plain browser opened with `?token=…` keeps it for the
 * tab (sessionStorage) and also gets the server's session cookie; otherwise the cookie alone is used.
 */
import { z } from 'zod';
import type { DicomJson } from '../../main/core/contract/dicom-json';
import type { DicomEdgeBridge } from '../../preload/api-types';
import { errorBodySchema } from '../../main/core/contract/api/common';
import { API_ROUTES, type ApiAnswer, type ApiRoute } from '../../main/core/contract/api/routes';
import type { SettingsDraft } from '../../main/core/contract/api/settings';
import { isLiveEventName, parseLiveEvent, type LiveEvent } from '../../main/core/contract/events';
import { parseProblemLine, type FieldProblem } from '../../main/core/contract/settings-problems';
import type { PeerSettings } from '../../main/core/contract/settings';
import type { WorklistItem, WorklistItemInput } from '../../main/core/contract/api/worklist';

// The page's CSP allows no eval: zod's compiled fast path would probe `new Function`, which a strict
// policy reports as a violation even though zod catches the refusal; so it parses without it.
z.config({ jitless: true });

export type { DicomJson };

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly problems: FieldProblem[] = []) {
    super(message);
    this.name = 'ApiError';
  }
}

function bridge(): DicomEdgeBridge | undefined {
  return typeof window !== 'undefined' ? window.dicomEdge : undefined;
}

function initialToken(): string {
  const fromBridge = bridge()?.sessionToken;
  if (fromBridge) return fromBridge;
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem('dicom-edge-token', fromUrl);
    url.searchParams.delete('token');
    history.replaceState(null, '', url.toString());
    return fromUrl;
  }
  return sessionStorage.getItem('dicom-edge-token') ?? '';
}

export const session = {
  baseUrl: (bridge()?.apiBaseUrl || location.origin).replace(/\/$/, ''),
  token: initialToken(),
  appVersion: bridge()?.appVersion ?? '',
};

export function authHeaders(): Record<string, string> {
  return session.token ? { Authorization: `Bearer ${session.token}` } : {};
}

export const dicomWebRoot = (): string => `${session.baseUrl}/dicom-web`;

/** The server's error body (contract: errorBodySchema); a body in another form (a proxy's page) is the message as it is. */
async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return new ApiError(response.status, text || response.statusText);
  }
  const parsed = errorBodySchema.safeParse(body);
  if (!parsed.success) return new ApiError(response.status, text);
  return new ApiError(response.status, parsed.data.error, (parsed.data.problems ?? []).map(parseProblemLine));
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const response = await fetch(path.startsWith('http') ? path : `${session.baseUrl}${path}`, { ...init, headers, credentials: 'same-origin' });
  if (!response.ok) throw await errorOf(response);
  return response;
}

// ---------------------------------------------------------------- DICOMweb

const STUDY_FIELDS = ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyDate', 'StudyTime', 'AccessionNumber',
  'StudyDescription', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances', 'StudyID'];

async function qido(path: string, params: Record<string, string | number>): Promise<DicomJson[]> {
  const query = new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)]));
  const response = await request(`/dicom-web${path}?${query}`, { headers: { Accept: 'application/dicom+json' } });
  if (response.status === 204) return [];
  const text = await response.text();
  return text ? (JSON.parse(text) as DicomJson[]) : [];
}

export function queryStudies(keys: Record<string, string> = {}, limit = 1000, offset = 0): Promise<DicomJson[]> {
  return qido('/studies', { ...keys, includefield: STUDY_FIELDS.join(','), limit, offset });
}

export function querySeries(studyUid: string): Promise<DicomJson[]> {
  return qido(`/studies/${studyUid}/series`, { includefield: 'all' });
}

export function queryInstances(studyUid: string, seriesUid: string): Promise<DicomJson[]> {
  return qido(`/studies/${studyUid}/series/${seriesUid}/instances`, { includefield: 'all', limit: 100000 });
}

export async function seriesMetadata(studyUid: string, seriesUid: string): Promise<DicomJson[]> {
  const response = await request(`/dicom-web/studies/${studyUid}/series/${seriesUid}/metadata`, { headers: { Accept: 'application/dicom+json' } });
  return (await response.json()) as DicomJson[];
}

/** A rendered image or thumbnail as an object URL (img elements cannot send the Bearer header). */
export async function imageUrl(path: string): Promise<string> {
  const response = await request(`/dicom-web${path}`, { headers: { Accept: 'image/jpeg, image/png;q=0.9' } });
  return URL.createObjectURL(await response.blob());
}

export async function deleteStudy(studyUid: string): Promise<void> {
  await request(`/dicom-web/studies/${studyUid}`, { method: 'DELETE' });
}

// ---------------------------------------------------------------- /api

interface Call {
  /** Values of the route's `:name` path parameters. */
  params?: Record<string, string | number>;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Calls one route of the contract and parses its answer with the route's schema. */
async function exchange<K extends ApiRoute>(route: K, call: Call = {}): Promise<{ answer: ApiAnswer<K>; response: Response }> {
  const [method, template] = route.split(' ') as [string, string];
  const path = template.replace(/:(\w+)/g, (_, name: string) => encodeURIComponent(String(call.params?.[name])));
  const search = new URLSearchParams(Object.entries(call.query ?? {}).flatMap(([k, v]) => (v === undefined ? [] : [[k, String(v)]]))).toString();
  const sendsBody = method === 'POST' || method === 'PUT';
  const response = await request(`${path}${search ? `?${search}` : ''}`, {
    method,
    headers: { Accept: 'application/json', ...(sendsBody ? { 'Content-Type': 'application/json' } : {}), ...call.headers },
    body: sendsBody ? JSON.stringify(call.body ?? {}) : undefined,
  });
  const answers = API_ROUTES[route].response as Partial<Record<number, z.ZodType>>;
  const schema = answers[response.status] ?? answers[200];
  if (!schema) throw new Error(`${route} has no JSON answer in the contract`);
  return { answer: schema.parse(await response.json()) as ApiAnswer<K>, response };
}

async function api<K extends ApiRoute>(route: K, call?: Call): Promise<ApiAnswer<K>> {
  return (await exchange(route, call)).answer;
}

export const getInfo = () => api('GET /api/info');
export const getOutboxSummary = () => api('GET /api/outbox');

/** Sync state of the given studies, batched (the UIDs travel in the query string), 4 requests at a time. */
export async function getStudiesSync(studyUids: string[]): Promise<ApiAnswer<'GET /api/sync'>> {
  const batches: string[][] = [];
  for (let i = 0; i < studyUids.length; i += 150) batches.push(studyUids.slice(i, i + 150));
  const answers: ApiAnswer<'GET /api/sync'>[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) answers.push(await api('GET /api/sync', { query: { study: batches[next++]!.join(',') } }));
  };
  await Promise.all(Array.from({ length: Math.min(4, batches.length) }, worker));
  return answers.flat();
}

export const getStudySyncDetail = (studyUid: string, limit = 1000, offset = 0) =>
  api('GET /api/studies/:study/sync', { params: { study: studyUid }, query: { limit, offset } });
export const getFailures = (limit = 200) => api('GET /api/failures', { query: { limit } });

export const retrieveStudy = (study: string) => api('POST /api/studies/:study/retrieve', { params: { study } });
export const pinStudy = (study: string) => api('POST /api/studies/:study/pin', { params: { study } });
export const unpinStudy = (study: string) => api('DELETE /api/studies/:study/pin', { params: { study } });
export const getPrefetch = (limit = 50) => api('GET /api/prefetch', { query: { limit } });

export const retryStudy = (study: string) => api('POST /api/studies/:study/retry', { params: { study } });
export const overwriteStudy = (study: string) => api('POST /api/studies/:study/overwrite', { params: { study } });
export const retryFailure = (id: number) => api('POST /api/failures/:id/retry', { params: { id } });
export const overwriteFailure = (id: number) => api('POST /api/failures/:id/overwrite', { params: { id } });
export const retryDestination = (name: string) => api('POST /api/destinations/:name/retry', { params: { name } });
export const pause = (name: string) => api('POST /api/destinations/:name/pause', { params: { name } });
export const resume = (name: string) => api('POST /api/destinations/:name/resume', { params: { name } });

/** The number of rows an action changed (0 for pause and resume, which change none). */
export const changedBy = (result: ApiAnswer<'POST /api/destinations/:name/retry'>): number => ('changed' in result ? result.changed : 0);

/** Retries every failed or conflicting instance of every destination. */
export async function retryAll(destinations: string[]): Promise<{ changed: number }> {
  let changed = 0;
  for (const name of destinations) changed += changedBy(await retryDestination(name));
  return { changed };
}

/** The revision (ETag) of the settings last read or written here; a write sends it, so a concurrent edit is not overwritten (409). */
let settingsRevision: string | null = null;

export async function getSettings(): Promise<ApiAnswer<'GET /api/settings'>> {
  const { answer, response } = await exchange('GET /api/settings');
  settingsRevision = response.headers.get('etag');
  return answer;
}

export async function putSettings(settings: SettingsDraft): Promise<ApiAnswer<'PUT /api/settings'>> {
  const { answer, response } = await exchange('PUT /api/settings', { body: settings, headers: settingsRevision ? { 'If-Match': settingsRevision } : {} });
  settingsRevision = response.headers.get('etag');
  return answer;
}

export const echoPeer = (peer: Pick<PeerSettings, 'aeTitle' | 'host' | 'port'>) => api('POST /api/peers/echo', { body: peer });

/** Tests the destination as edited in the form (`draft`, secrets may be the mask), or as saved. */
export const testDestination = (name: string, draft?: unknown) =>
  api('POST /api/destinations/:name/test', { params: { name }, body: draft === undefined ? undefined : { destination: draft } });

export const startDeviceCode = (name: string) => api('POST /api/destinations/:name/sign-in', { params: { name } });
export const deviceCodeStatus = (name: string) => api('GET /api/destinations/:name/sign-in', { params: { name } });

// ---------------------------------------------------------------- live events

/**
 * Server-Sent Events over fetch (EventSource cannot send the Bearer header). Reconnects with a short
 * backoff; `onState` reports whether the stream is connected.
 */
export function subscribeEvents(onEvent: (event: LiveEvent) => void, onState: (connected: boolean) => void): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  let delay = 500;
  const connect = async (): Promise<void> => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await request('/api/events', { headers: { Accept: 'text/event-stream' }, signal: controller.signal });
        onState(true);
        delay = 500;
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
            const parsed = parseSseBlock(block);
            if (parsed) onEvent(parsed);
          }
        }
      } catch {
        /* reconnect below */
      }
      if (stopped) return;
      onState(false);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  void connect();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

/** One event of the stream, checked against the contract; comments, retry hints and unknown event names are skipped. */
function parseSseBlock(block: string): LiveEvent | null {
  let type = 'message';
  const data: string[] = [];
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0 || !isLiveEventName(type)) return null;
  try {
    return parseLiveEvent(type, JSON.parse(data.join('\n')));
  } catch (error) {
    console.error(`live event ${type} does not match the contract: ${(error as Error).message}`);
    return null;
  }
}

// ---------------------------------------------------------------- clinic workflow

export const getOpenCommitments = () => api('GET /api/commitments');
export const getWorklist = () => api('GET /api/worklist');

/** Schedules an item (answered 201 with the item, its Study Instance UID generated). */
export async function scheduleWorklistItem(item: WorklistItemInput): Promise<WorklistItem> {
  return (await exchange('POST /api/worklist', { body: item })).answer as unknown as WorklistItem;
}

export const editWorklistItem = (id: number, item: WorklistItemInput) => api('PUT /api/worklist/:id', { params: { id }, body: item });
export const cancelWorklistItem = (id: number) => api('DELETE /api/worklist/:id', { params: { id } });
