/**
 * Every HTTP call the renderer makes lives here, so adapting to the server's routes is one file.
 * Auth: the Electron preload hands a Bearer token; a plain browser opened with `?token=…` keeps it for the
 * tab (sessionStorage) and also gets the server's session cookie; otherwise the cookie alone is used.
 */
import type { DicomJson } from '../../main/core/contract/dicom-json';
import { OUTBOX_STATES, type OutboxState } from '../../main/core/contract/outbox-states';
import type { DicomEdgeBridge } from '../../preload/api-types';

export type Counts = Record<OutboxState, number>;

export interface DestinationStatus {
  name: string;
  baseUrl?: string;
  state: 'online' | 'offline' | 'paused' | 'auth' | 'forbidden' | 'idle';
  since: number;
  lastError?: string | null;
  counts?: Partial<Counts>;
  pendingBytes?: number;
  bytesPerSecond?: number;
  instancesPerSecond?: number;
  nextAttemptAt?: number | null;
}

export interface OutboxSummary {
  destinations: DestinationStatus[];
  /** Instances received while no destination was configured. */
  unrouted: number;
  configured: boolean;
}

export interface StudySync {
  studyUid: string;
  /** Summed over destinations. */
  counts: Counts;
  total: number;
  /** The study's local size on disk (studies.size_bytes). */
  sizeBytes?: number;
}

export interface InstanceSync {
  id?: number;
  sopInstanceUid: string;
  destination: string;
  state: OutboxState;
  attempts?: number;
  lastError?: string | null;
  updatedAt?: number;
}

export interface Failure {
  id?: number;
  studyUid: string;
  sopInstanceUid: string;
  destination: string;
  state: OutboxState;
  reason: string;
  failureReason?: number | null;
  attempts?: number;
  updatedAt?: number;
  patientName?: string;
}

export interface ApplianceInfo {
  version?: string;
  aeTitle?: string;
  dimsePort?: number;
  httpPort?: number;
  dataDir?: string;
  storage?: { usedBytes?: number; freeBytes?: number; maxArchiveBytes?: number };
  [key: string]: unknown;
}

export interface FieldProblem {
  path: string;
  message: string;
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly problems: FieldProblem[] = [], readonly body?: unknown) {
    super(message);
    this.name = 'ApiError';
  }
}

const EMPTY_COUNTS = (): Counts => Object.fromEntries(OUTBOX_STATES.map((state) => [state, 0])) as Counts;

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

async function problemsOf(response: Response): Promise<{ message: string; problems: FieldProblem[]; body?: unknown }> {
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    return { message: text || response.statusText, problems: [] };
  }
  const record = (body ?? {}) as Record<string, unknown>;
  const list = (record.problems ?? record.issues ?? record.errors ?? record.fields) as unknown;
  const problems: FieldProblem[] = [];
  if (Array.isArray(list)) {
    for (const item of list) {
      if (typeof item === 'string') {
        const match = /^field "([^"]+)"[^:]*:\s*(.*)$/.exec(item);
        problems.push(match ? { path: match[1]!, message: match[2]! } : { path: '', message: item });
      } else if (item && typeof item === 'object') {
        const p = item as { path?: unknown; message?: unknown };
        const path = Array.isArray(p.path) ? p.path.join('.') : String(p.path ?? '');
        problems.push({ path, message: String(p.message ?? '') });
      }
    }
  }
  const message = String(record.message ?? record.detail ?? record.title ?? record.error ?? response.statusText);
  if (problems.length === 0) problems.push(...fieldProblemsInMessage(message));
  return { message, problems, body };
}

/** The server names bad settings as `field "a.b" has value X: message`, joined by "; ". */
function fieldProblemsInMessage(message: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const pattern = /field "([^"]*)" has value (?:missing|"(?:[^"\\]|\\.)*"|[^:]*?): (.*?)(?=; field "|$)/g;
  for (const match of message.matchAll(pattern)) problems.push({ path: match[1] === '(root)' ? '' : match[1]!, message: match[2]! });
  return problems;
}

export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [k, v] of Object.entries(authHeaders())) headers.set(k, v);
  const response = await fetch(path.startsWith('http') ? path : `${session.baseUrl}${path}`, { ...init, headers, credentials: 'same-origin' });
  if (!response.ok) {
    const { message, problems, body } = await problemsOf(response);
    throw new ApiError(response.status, message, problems, body);
  }
  return response;
}

async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await request(path, { ...init, headers: { Accept: 'application/json', ...(init.headers as Record<string, string>) } });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

const post = <T>(path: string, body?: unknown): Promise<T> =>
  json<T>(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}) });

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

export function seriesMetadata(studyUid: string, seriesUid: string): Promise<DicomJson[]> {
  return json<DicomJson[]>(`/dicom-web/studies/${studyUid}/series/${seriesUid}/metadata`, { headers: { Accept: 'application/dicom+json' } });
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

export const getInfo = (): Promise<ApplianceInfo> => json('/api/info');

interface RawDestination {
  name: string;
  unrouted?: boolean;
  counts?: Record<string, { count: number; bytes: number } | number>;
  bytesPending?: number;
  rate?: { instancesPerMinute?: number; bytesPerSecond?: number };
  connection?: { state: string; since: number | null };
  lastError?: string | null;
  nextAttemptAt?: number | null;
}

function countsOf(raw: RawDestination['counts']): Counts {
  const counts = EMPTY_COUNTS();
  for (const key of Object.keys(counts) as OutboxState[]) {
    const v = raw?.[key];
    counts[key] = typeof v === 'number' ? v : v?.count ?? 0;
  }
  return counts;
}

/** GET /api/outbox, reshaped per destination; the '*' row (received while no destination existed) is `unrouted`. */
export async function getOutboxSummary(): Promise<OutboxSummary> {
  const raw = await json<{ destinations?: RawDestination[] }>('/api/outbox');
  let unrouted = 0;
  const destinations: DestinationStatus[] = [];
  for (const d of raw.destinations ?? []) {
    const counts = countsOf(d.counts);
    if (d.unrouted || d.name === '*') {
      unrouted += counts.pending + counts.sending;
      continue;
    }
    const state = d.connection?.state;
    destinations.push({
      name: d.name,
      state: (state && state !== 'unknown' ? state : 'idle') as DestinationStatus['state'],
      since: d.connection?.since ?? 0,
      lastError: d.lastError ?? null,
      counts,
      pendingBytes: d.bytesPending ?? 0,
      bytesPerSecond: d.rate?.bytesPerSecond ?? 0,
      instancesPerSecond: (d.rate?.instancesPerMinute ?? 0) / 60,
      nextAttemptAt: d.nextAttemptAt ?? null,
    });
  }
  return { destinations, unrouted, configured: destinations.length > 0 };
}

interface RawStudySync {
  studyUid: string;
  state?: string;
  destinations?: { name: string; counts: Record<string, number>; state?: string }[];
  sizeBytes?: number;
}

function toStudySync(raw: RawStudySync): StudySync {
  const counts = EMPTY_COUNTS();
  const routed = (raw.destinations ?? []).filter((d) => d.name !== '*');
  for (const d of routed) {
    const c = countsOf(d.counts);
    for (const key of Object.keys(counts) as OutboxState[]) counts[key] += c[key];
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0) - counts.cancelled;
  return { studyUid: raw.studyUid, counts, total, ...(typeof raw.sizeBytes === 'number' ? { sizeBytes: raw.sizeBytes } : {}) };
}

/** Sync state of the given studies (batched: the UIDs travel in the query string). */
export async function getStudiesSync(studyUids: string[]): Promise<Map<string, StudySync>> {
  const map = new Map<string, StudySync>();
  const batches: string[][] = [];
  for (let i = 0; i < studyUids.length; i += 150) batches.push(studyUids.slice(i, i + 150));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const batch = batches[next++]!;
      const list = await json<RawStudySync[]>(`/api/sync?study=${batch.join(',')}`);
      for (const raw of list) map.set(raw.studyUid, toStudySync(raw));
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, batches.length) }, worker));
  return map;
}

/** One instance of a study with its delivery state per destination ('*': received while no destination existed). */
export interface InstanceRow {
  sopInstanceUid: string;
  seriesUid: string;
  seriesNumber: number | null;
  instanceNumber: number | null;
  destinations: InstanceSync[];
}

export interface StudySyncDetail {
  sync: StudySync;
  /** Failed or conflicting instances. */
  problems: InstanceSync[];
  /** Every instance of the study, one page (failed or conflicting first). */
  instances: { total: number; offset: number; items: InstanceRow[] };
}

export async function getStudySyncDetail(studyUid: string, limit = 1000, offset = 0): Promise<StudySyncDetail> {
  const raw = await json<RawStudySync & {
    problems?: Record<string, unknown>[];
    instances?: { total: number; offset: number; items: Array<Omit<InstanceRow, 'destinations'> & { destinations: Array<Record<string, unknown>> }> };
  }>(`/api/studies/${studyUid}/sync?limit=${limit}&offset=${offset}`);
  const page = raw.instances ?? { total: 0, offset, items: [] };
  return {
    sync: toStudySync(raw),
    problems: (raw.problems ?? []).map((p) => ({
      id: Number(p.id), sopInstanceUid: String(p.sopInstanceUid), destination: String(p.destination), state: p.state as OutboxState,
      attempts: Number(p.attempts ?? 0), lastError: (p.lastError as string | null) ?? null, updatedAt: Number(p.updatedAt ?? 0),
    })),
    instances: {
      total: page.total,
      offset: page.offset,
      items: page.items.map((i) => ({
        ...i,
        destinations: i.destinations.map((d) => ({
          id: Number(d.id), sopInstanceUid: i.sopInstanceUid, destination: String(d.destination), state: d.state as OutboxState,
          attempts: Number(d.attempts ?? 0), lastError: (d.lastError as string | null) ?? null, updatedAt: Number(d.updatedAt ?? 0),
        })),
      })),
    },
  };
}

export async function getFailures(limit = 200): Promise<Failure[]> {
  const raw = await json<{ items?: Record<string, unknown>[] }>(`/api/failures?limit=${limit}`);
  return (raw.items ?? []).map((r) => ({
    id: Number(r.id), studyUid: String(r.studyUid), sopInstanceUid: String(r.sopInstanceUid), destination: String(r.destination),
    state: r.state as OutboxState, reason: String(r.lastError ?? (r.failureReason ? `failure reason ${r.failureReason}` : '')),
    failureReason: (r.failureReason as number | null) ?? null, attempts: Number(r.attempts ?? 0), updatedAt: Number(r.updatedAt ?? 0),
    patientName: typeof r.patientName === 'string' ? r.patientName : undefined,
  }));
}

export interface ActionResult { action?: string; changed?: number }

export const retryStudy = (studyUid: string): Promise<ActionResult> => post(`/api/studies/${studyUid}/retry`);
export const overwriteStudy = (studyUid: string): Promise<ActionResult> => post(`/api/studies/${studyUid}/overwrite`);
export const retryFailure = (id: number): Promise<ActionResult> => post(`/api/failures/${id}/retry`);
export const overwriteFailure = (id: number): Promise<ActionResult> => post(`/api/failures/${id}/overwrite`);
export const retryDestination = (name: string): Promise<ActionResult> => post(`/api/destinations/${encodeURIComponent(name)}/retry`);
export const pause = (name: string): Promise<ActionResult> => post(`/api/destinations/${encodeURIComponent(name)}/pause`);
export const resume = (name: string): Promise<ActionResult> => post(`/api/destinations/${encodeURIComponent(name)}/resume`);

/** Retries every failed or conflicting instance of every destination. */
export async function retryAll(destinations: string[]): Promise<ActionResult> {
  let changed = 0;
  for (const name of destinations) changed += (await retryDestination(name)).changed ?? 0;
  return { action: 'retry', changed };
}

/** The revision (ETag) of the settings last read or written here; a write sends it, so a concurrent edit is not overwritten (409). */
let settingsRevision: string | null = null;

export async function getSettings(): Promise<Record<string, unknown>> {
  const response = await request('/api/settings', { headers: { Accept: 'application/json' } });
  settingsRevision = response.headers.get('etag');
  return (await response.json()) as Record<string, unknown>;
}
/** What a settings write answers: the settings as saved, the paths in force now and those waiting for a restart. */
export interface SettingsSaved {
  settings: Record<string, unknown>;
  applied: string[];
  restartRequired: string[];
}

export async function putSettings(settings: unknown): Promise<SettingsSaved> {
  const response = await request('/api/settings', {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...(settingsRevision ? { 'If-Match': settingsRevision } : {}) },
    body: JSON.stringify(settings),
  });
  settingsRevision = response.headers.get('etag');
  const result = (await response.json()) as Partial<SettingsSaved>;
  return { settings: result.settings ?? (settings as Record<string, unknown>), applied: result.applied ?? [], restartRequired: result.restartRequired ?? [] };
}

/** POST /api/peers/echo answers 200 with the outcome, whether or not the peer answered. */
export interface EchoResult { ok: boolean; status: number | null; ms: number; error: string | null }
export const echoPeer = (peer: { aeTitle: string; host: string; port: number }): Promise<EchoResult> => post('/api/peers/echo', peer);

export interface TestConnectionResult { ok: boolean; step: 'token' | 'qido'; status?: number; message: string }
/** Tests the destination as edited in the form (`draft`, secrets may be the mask), or as saved. */
export const testDestination = (name: string, draft?: unknown): Promise<TestConnectionResult> =>
  post(`/api/destinations/${encodeURIComponent(name)}/test`, draft === undefined ? undefined : { destination: draft });

export type DeviceCodeStatus =
  | { state: 'idle' }
  | { state: 'waiting'; userCode: string; verificationUri: string; message: string; expiresAt: number }
  | { state: 'signed-in'; account: string }
  | { state: 'failed'; error: string };
export const startDeviceCode = (name: string): Promise<DeviceCodeStatus> => post(`/api/destinations/${encodeURIComponent(name)}/sign-in`);
export const deviceCodeStatus = (name: string): Promise<DeviceCodeStatus> => json(`/api/destinations/${encodeURIComponent(name)}/sign-in`);

// ---------------------------------------------------------------- live events

export interface LiveEvent {
  type: string;
  data: Record<string, unknown>;
}

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
  if (data.length === 0) return null;
  try {
    const parsed = JSON.parse(data.join('\n')) as Record<string, unknown>;
    // Some servers wrap: { type, payload }.
    if (type === 'message' && typeof parsed.type === 'string') {
      return { type: parsed.type, data: (parsed.payload ?? parsed.data ?? parsed) as Record<string, unknown> };
    }
    return { type, data: parsed };
  } catch {
    return null;
  }
}
