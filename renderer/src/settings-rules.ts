/**
 * The settings rules the form checks before saving, with the same wording as the server's schema
 * (main/core/settings/schema.ts), so a technician sees the message next to the field at once. The server
 * validates again; its answer is shown the same way.
 */
import type { FieldProblem } from './api';

type Json = Record<string, any>;

const AE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;

function aeProblem(value: unknown): string | null {
  if (typeof value !== 'string' || !AE.test(value)) return 'must be 1 to 16 printable ASCII characters without backslash';
  if (value.trim().length === 0) return 'must not be only spaces';
  return null;
}

function portProblem(value: unknown): string | null {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? null : 'must be a whole number from 1 to 65535';
}

function urlProblem(value: unknown): string | null {
  if (typeof value !== 'string' || value === '') return 'is required';
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:' ? null : 'must be an http(s) URL';
  } catch {
    return 'must be a URL such as https://workspace-service.dicom.azurehealthcareapis.com/v2';
  }
}

const REQUIRED_AUTH: Record<string, string[]> = {
  none: [],
  basic: ['user', 'password'],
  bearer: ['token'],
  'entra-client-secret': ['tenantId', 'clientId', 'clientSecret'],
  'entra-client-certificate': ['tenantId', 'clientId', 'certificateFile', 'privateKeyFile'],
  'entra-device-code': ['tenantId', 'clientId'],
};

export function validateSettings(s: Json): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const add = (path: string, message: string | null): void => {
    if (message) problems.push({ path, message });
  };
  add('aeTitle', aeProblem(s.aeTitle));
  add('dimse.port', portProblem(s.dimse?.port));
  (s.dimse?.allowedCallingAes ?? []).forEach((ae: unknown, i: number) => {
    const p = aeProblem(ae);
    if (p) add('dimse.allowedCallingAes', `"${String(ae)}" ${p}`);
    void i;
  });
  (s.peers ?? []).forEach((peer: Json, i: number) => {
    add(`peers.${i}.aeTitle`, aeProblem(peer.aeTitle));
    add(`peers.${i}.host`, typeof peer.host === 'string' && peer.host.trim() ? null : 'is required');
    add(`peers.${i}.port`, portProblem(peer.port));
  });
  const names = new Set<string>();
  (s.destinations ?? []).forEach((d: Json, i: number) => {
    add(`destinations.${i}.name`, typeof d.name === 'string' && NAME.test(d.name) ? (names.has(d.name) ? 'destination names must be unique' : null) : 'must be 1 to 64 letters, digits, - or _');
    names.add(d.name);
    add(`destinations.${i}.baseUrl`, urlProblem(d.baseUrl));
    const kind = d.auth?.kind ?? 'none';
    for (const key of REQUIRED_AUTH[kind] ?? []) {
      add(`destinations.${i}.auth.${key}`, typeof d.auth?.[key] === 'string' && d.auth[key] !== '' ? null : 'is required');
    }
    if (d.auth?.authority) add(`destinations.${i}.auth.authority`, urlProblem(d.auth.authority));
  });
  for (const key of ['maxArchiveBytes', 'minFreeBytes']) {
    const v = s.storage?.[key];
    add(`storage.${key}`, typeof v === 'number' && Number.isFinite(v) && v >= 0 ? null : 'must be a number of at least 0');
  }
  return problems;
}
