import type { FastifyReply, FastifyRequest } from 'fastify';

/** A request we answer with a status and a one-line reason (PS3.18 lets the payload explain the error). */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'HttpError';
  }
}

export function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('application/json').send({ status, error: message });
}

/** Base URL of the DICOMweb service as the client reached it. */
export function dicomWebBase(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}/dicom-web`;
}
