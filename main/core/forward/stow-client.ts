/** HTTP side of a destination: STOW-RS (POST/PUT) streamed from files, and the QIDO calls we need. */
import { Readable } from 'node:stream';
import { request, type Dispatcher } from 'undici';
import { tagOf } from '../dicom/dictionary.js';
import type { DicomJson } from '../dicom/json-model.js';
import type { MultipartBody } from '../multipart/writer.js';
import { parseRetryAfter } from './backoff.js';
import type { StowAnswer } from './classify.js';
import { parseStowResponse } from './stow-response.js';

const MAX_RESPONSE_CHARS = 16 * 1024 * 1024;
const EXCERPT_CHARS = 300;
const SOP_INSTANCE_UID = tagOf('SOPInstanceUID');

export function trimBase(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '');
}

async function readText(body: Dispatcher.ResponseData['body']): Promise<string> {
  let text = '';
  for await (const chunk of body) {
    if (text.length < MAX_RESPONSE_CHARS) text += (chunk as Buffer).toString('utf8');
  }
  return text;
}

function excerpt(text: string): string | undefined {
  const flat = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  return flat ? flat.slice(0, EXCERPT_CHARS) : undefined;
}

export interface StowCall {
  dispatcher: Dispatcher;
  baseUrl: string;
  studyUid: string;
  method: 'POST' | 'PUT';
  body: MultipartBody;
  authorization: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Sends one STOW-RS request. Resolves with the answer, rejects on network failures (reset, refused, DNS, timeout). */
export async function sendStow(call: StowCall): Promise<StowAnswer> {
  const url = `${trimBase(call.baseUrl)}/studies/${encodeURIComponent(call.studyUid)}`;
  const headers: Record<string, string> = {
    'content-type': call.body.contentType,
    ...(call.body.contentLength !== undefined ? { 'content-length': String(call.body.contentLength) } : {}),
    accept: 'application/dicom+json',
  };
  if (call.authorization) headers.authorization = call.authorization;
  const signals = [AbortSignal.timeout(call.timeoutMs), ...(call.signal ? [call.signal] : [])];
  const response = await request(url, {
    dispatcher: call.dispatcher,
    method: call.method,
    headers,
    body: Readable.from(call.body.stream(), { objectMode: false }),
    signal: AbortSignal.any(signals),
  });
  const text = await readText(response.body);
  const body = parseStowResponse(text);
  return {
    status: response.statusCode,
    body,
    text: body ? undefined : excerpt(text),
    retryAfterMs: parseRetryAfter(response.headers['retry-after']),
  };
}

export interface QidoCall {
  dispatcher: Dispatcher;
  url: string;
  authorization: string | undefined;
  timeoutMs: number;
}

export interface QidoAnswer {
  status: number;
  /** Parsed DICOM JSON array on 200; [] on 204. */
  datasets: DicomJson[];
  text?: string;
}

export async function sendQido(call: QidoCall): Promise<QidoAnswer> {
  const headers: Record<string, string> = { accept: 'application/dicom+json' };
  if (call.authorization) headers.authorization = call.authorization;
  const response = await request(call.url, { dispatcher: call.dispatcher, method: 'GET', headers, signal: AbortSignal.timeout(call.timeoutMs) });
  const text = await readText(response.body);
  if (response.statusCode === 204 || (response.statusCode === 200 && text.trim() === '')) return { status: response.statusCode, datasets: [] };
  if (response.statusCode !== 200) return { status: response.statusCode, datasets: [], text: excerpt(text) };
  try {
    const parsed = JSON.parse(text) as unknown;
    return { status: 200, datasets: Array.isArray(parsed) ? (parsed as QidoAnswer['datasets']) : [] };
  } catch {
    return { status: 200, datasets: [], text: excerpt(text) };
  }
}

/** SOP Instance UIDs of a study on the destination, paged 200 at a time (the Azure maximum). */
export async function listStudyInstances(call: Omit<QidoCall, 'url'> & { baseUrl: string; studyUid: string }): Promise<{ status: number; uids: Set<string>; text?: string }> {
  const uids = new Set<string>();
  const pageSize = 200;
  for (let offset = 0; ; offset += pageSize) {
    const url = `${trimBase(call.baseUrl)}/studies/${encodeURIComponent(call.studyUid)}/instances?includefield=${SOP_INSTANCE_UID}&limit=${pageSize}&offset=${offset}`;
    const answer = await sendQido({ ...call, url });
    if (answer.status === 404) return { status: 200, uids };
    if (answer.status !== 200 && answer.status !== 204) return { status: answer.status, uids, text: answer.text };
    for (const dataset of answer.datasets) {
      const uid = dataset[SOP_INSTANCE_UID]?.Value?.[0];
      if (typeof uid === 'string') uids.add(uid);
    }
    if (answer.datasets.length < pageSize) return { status: 200, uids };
  }
}
