import type { FastifyReply, FastifyRequest } from 'fastify';
import { FrameError, type FrameProblem } from '../dicom/pixel-frames.js';

/** A request we answer with a status and a one-line reason (PS3.18 lets the payload explain the error). */
export class HttpError extends Error {
  /** `headers` go out with the answer (e.g. Retry-After with a 503). */
  constructor(readonly status: number, message: string, readonly headers: Readonly<Record<string, string>> = {}) {
    super(message);
    this.name = 'HttpError';
  }
}

const FRAME_STATUS: Readonly<Record<FrameProblem, number>> = { 'bad-frame-list': 400, 'no-such-frame': 404, 'not-servable': 406, inconsistent: 500 };

/** Runs frame work of dicom/pixel-frames.ts, answering its FrameError with the matching status. */
export function withFrameStatus<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (error instanceof FrameError) throw new HttpError(FRAME_STATUS[error.problem], error.message);
    throw error;
  }
}

export function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ status, error: message });
}

/** Base URL of the DICOMweb service as the client reached it. */
export function dicomWebBase(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}/dicom-web`;
}
