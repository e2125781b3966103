/**
 * Every HTTP call the renderer makes lives here, so adapting to the server's routes is one file.
 * Auth: the Electron preload hands a Bearer token; a plain browser opened with `?token=…` keeps it for the
 * tab (sessionStorage) and also gets the server's session cookie; otherwise the cookie alone is used.
 */
import type { DicomEdgeBridge } from '../../preload/api-types';

export type OutboxState = 'pending' | 'sending' | 'delivered' | 'failed' | 'conflict' | 'cancelled';
export type Counts = Record<OutboxState, number>;
export type DicomJson = Record<string, { vr: string; Value?: unknown[]; BulkDataURI?: string; InlineBinary?: string }>;

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
}

export interface InstanceSync {
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

const EMPTY_COUNTS = (): Counts => ({ pending: 0, sending: 0, delivered: 0, failed: 0, conflict: 0, cancelled: 0 });

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
  return { message, problems, body };
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

function normalizeCounts(value: unknown): Counts {
  const counts = EMPTY_COUNTS();
  if (value && typeof value === 'object') {
    for (const key of Object.keys(counts) as OutboxState[]) {
      const n = (value as Record<string, unknown>)[key];
      if (typeof n === 'number') counts[key] = n;
    }
  }
  return counts;
}

export async function getOutboxSummary(): Promise<OutboxSummary> {
  const raw = await json<Record<string, unknown> | DestinationStatus[]>('/api/outbox');
  const record = (Array.isArray(raw) ? { destinations: raw } : raw) as Record<string, unknown>;
  const destinations = ((record.destinations ?? []) as DestinationStatus[]).map((d) => ({ ...d, counts: normalizeCounts(d.counts) }));
  const unrouted = typeof record.unrouted === 'number' ? record.unrouted
    : typeof (record.waiting as Record<string, unknown> | undefined)?.instances === 'number' ? (record.waiting as { instances: number }).instances : 0;
  return { destinations, unrouted, configured: destinations.length > 0 };
}

/** Sync state of many studies at once, summed over destinations. */
export async function getStudiesSync(studyUids?: string[]): Promise<Map<string, StudySync>> {
  const query = studyUids && studyUids.length > 0 && studyUids.length <= 200 ? `?studyUid=${studyUids.join(',')}` : '?limit=100000';
  const raw = await json<unknown>(`/api/sync/studies${query}`);
  const list = (Array.isArray(raw) ? raw : ((raw as Record<string, unknown>)?.studies ?? [])) as { studyUid: string; counts?: unknown }[];
  const map = new Map<string, StudySync>();
  for (const item of list) {
    const entry = map.get(item.studyUid) ?? { studyUid: item.studyUid, counts: EMPTY_COUNTS(), total: 0 };
    const counts = normalizeCounts(item.counts);
    for (const key of Object.keys(counts) as OutboxState[]) entry.counts[key] += counts[key];
    entry.total = Object.values(entry.counts).reduce((a, b) => a + b, 0) - entry.counts.cancelled;
    map.set(item.studyUid, entry);
  }
  return map;
}

export async function getStudyInstancesSync(studyUid: string): Promise<InstanceSync[]> {
  const raw = await json<unknown>(`/api/sync/studies/${studyUid}/instances`);
  return (Array.isArray(raw) ? raw : ((raw as Record<string, unknown>)?.instances ?? [])) as InstanceSync[];
}

export async function getFailures(limit = 200): Promise<Failure[]> {
  const raw = await json<unknown>(`/api/failures?limit=${limit}`);
  return (Array.isArray(raw) ? raw : ((raw as Record<string, unknown>)?.failures ?? [])) as Failure[];
}

export interface Selector {
  destination?: string;
  studyUid?: string;
  sopInstanceUids?: string[];
}

export const retry = (selector: Selector): Promise<unknown> => post('/api/actions/retry', selector);
export const sendAgain = (selector: Selector): Promise<unknown> => post('/api/actions/resend', selector);
export const cancel = (selector: Selector): Promise<unknown> => post('/api/actions/cancel', selector);
export const overwrite = (selector: Selector): Promise<unknown> => post('/api/actions/overwrite', selector);
export const pause = (destination: string): Promise<unknown> => post('/api/actions/pause', { destination });
export const resume = (destination: string): Promise<unknown> => post('/api/actions/resume', { destination });

export const getSettings = (): Promise<Record<string, unknown>> => json('/api/settings');
export const putSettings = (settings: unknown): Promise<Record<string, unknown>> =>
  json('/api/settings', { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(settings) });

export interface EchoResult { ok: boolean; message: string; status?: number; ms?: number }
export const echoPeer = (peer: { aeTitle: string; host: string; port: number }): Promise<EchoResult> => post('/api/actions/echo', peer);

export interface TestConnectionResult { ok: boolean; step: 'token' | 'qido'; status?: number; message: string }
export const testDestination = (name: string): Promise<TestConnectionResult> => post(`/api/destinations/${encodeURIComponent(name)}/test`);

export type DeviceCodeStatus =
  | { state: 'idle' }
  | { state: 'waiting'; userCode: string; verificationUri: string; message: string; expiresAt: number }
  | { state: 'signed-in'; account: string }
  | { state: 'failed'; error: string };
export const startDeviceCode = (name: string): Promise<DeviceCodeStatus> => post(`/api/destinations/${encodeURIComponent(name)}/device-code`);
export const deviceCodeStatus = (name: string): Promise<DeviceCodeStatus> => json(`/api/destinations/${encodeURIComponent(name)}/device-code`);

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

export function parseSseBlock(block: string): LiveEvent | null {
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
