import type { Session } from 'electron';
import { parseResolvedProxy, type SystemProxy } from '../core/appliance.js';

/** Chromium's proxy for an https: and an http: address outside the clinic, from the OS settings or their PAC script. */
export async function resolveSystemProxy(session: Session): Promise<SystemProxy> {
  const [https, http] = await Promise.all([
    session.resolveProxy('https://login.microsoftonline.com/'),
    session.resolveProxy('http://example.com/'),
  ]);
  return { https: parseResolvedProxy(https), http: parseResolvedProxy(http) };
}
