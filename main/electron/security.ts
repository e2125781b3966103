/**
 * The window's security decisions as pure functions, so they are unit-tested without Electron:
 * webPreferences, Content-Security-Policy, navigation and external-link rules, permissions, IPC senders.
 */
import type { WebPreferences } from 'electron';

export function secureWebPreferences(preloadPath: string): WebPreferences {
  return {
    preload: preloadPath,
    contextIsolation: true,
    sandbox: true,
    nodeIntegration: false,
    nodeIntegrationInWorker: false,
    nodeIntegrationInSubFrames: false,
    webSecurity: true,
    allowRunningInsecureContent: false,
    webviewTag: false,
    experimentalFeatures: false,
    navigateOnDragDrop: false,
    safeDialogs: true,
    spellcheck: false,
  };
}

/**
 * The page's CSP. 'wasm-unsafe-eval' lets the image loader compile its JPEG-LS/JPEG 2000/JPEG lossless
 * WebAssembly codecs (embedded in its bundle); blob: workers are how the loader starts its decode workers.
 * Nothing else is allowed to run or connect outside the app's own origin.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "img-src 'self' data: blob:",
  "style-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function parse(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** True when `url` is on the app's own origin (scheme, host and port all equal). */
export function isAppUrl(url: string, appOrigin: string): boolean {
  const parsed = parse(url);
  return parsed !== null && parsed.origin === new URL(appOrigin).origin;
}

/**
 * The URL to hand to `shell.openExternal`, or null when it must not be opened: only http(s) with a host,
 * without embedded credentials, and never the app's own origin (that would leak the session cookie's
 * origin into a browser the user did not ask for).
 */
export function externalUrlToOpen(url: string, appOrigin: string): string | null {
  const parsed = parse(url);
  if (!parsed) return null;
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return null;
  if (!parsed.hostname || parsed.username || parsed.password) return null;
  if (parsed.origin === new URL(appOrigin).origin) return null;
  return parsed.href;
}

/** The parts of Electron's WebContents the guards use; a fake in tests. */
export interface GuardedContents {
  on(event: 'will-navigate' | 'will-redirect', listener: (event: { preventDefault(): void }, url: string) => void): unknown;
  on(event: 'will-attach-webview', listener: (event: { preventDefault(): void }) => void): unknown;
  setWindowOpenHandler(handler: (details: { url: string }) => { action: 'deny' } | { action: 'allow' }): void;
}

export interface GuardOptions {
  appOrigin: string;
  openExternal: (url: string) => unknown;
  onBlocked?: (what: string, url: string) => void;
}

/** Keeps the window on the app origin; new windows are denied, external links go to the OS browser. */
export function attachNavigationGuards(contents: GuardedContents, options: GuardOptions): void {
  const keepInApp = (event: { preventDefault(): void }, url: string): void => {
    if (isAppUrl(url, options.appOrigin)) return;
    event.preventDefault();
    const external = externalUrlToOpen(url, options.appOrigin);
    if (external) void options.openExternal(external);
    else options.onBlocked?.('navigation', url);
  };
  contents.on('will-navigate', keepInApp);
  contents.on('will-redirect', keepInApp);
  contents.on('will-attach-webview', (event) => event.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    const external = externalUrlToOpen(url, options.appOrigin);
    if (external) void options.openExternal(external);
    else options.onBlocked?.('window-open', url);
    return { action: 'deny' };
  });
}

/** The parts of Electron's Session the permission handlers use. */
export interface PermissionSession {
  setPermissionRequestHandler(handler: (webContents: unknown, permission: string, callback: (granted: boolean) => void) => void): void;
  setPermissionCheckHandler(handler: (webContents: unknown, permission: string) => boolean): void;
}

/** The app needs no camera, microphone, notifications-from-page, geolocation, …: every request is denied. */
export function denyAllPermissions(session: PermissionSession, onDenied?: (permission: string) => void): void {
  session.setPermissionRequestHandler((_contents, permission, callback) => {
    onDenied?.(permission);
    callback(false);
  });
  session.setPermissionCheckHandler(() => false);
}

/** The sender frame of an IPC message, as Electron gives it (WebFrameMain). */
export interface SenderFrame {
  url: string;
  parent: unknown;
}

/**
 * IPC is answered only for the app window's top frame on the app origin: not for subframes, not after a
 * (blocked) navigation elsewhere, not for a frame that is already gone.
 */
export function isTrustedSender(frame: SenderFrame | null | undefined, appOrigin: string): boolean {
  if (!frame) return false;
  if (frame.parent) return false;
  return isAppUrl(frame.url, appOrigin);
}

/**
 * The image loader's decode worker script (served from its own URL) gets the worker-only policy the server
 * gives it (web/static-ui.ts): its embind codecs need eval, inside the worker only, and fetch their
 * wasm from data: URIs. Every other app response gets the page's policy.
 */
export const DECODE_WORKER_CSP = "default-src 'none'; script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; connect-src 'self' data:";
const DECODE_WORKER_PATH = /^\/assets\/index\.worker\.bundle\.min\.worker-[\w-]+\.js$/;

/** Adds the CSP to responses from the app origin (defence in depth: the server sends it too). */
export function withCsp(url: string, appOrigin: string, headers: Record<string, string[]>): Record<string, string[]> {
  if (!isAppUrl(url, appOrigin)) return headers;
  const policy = DECODE_WORKER_PATH.test(new URL(url).pathname) ? DECODE_WORKER_CSP : CONTENT_SECURITY_POLICY;
  const next: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() !== 'content-security-policy') next[name] = value;
  }
  next['Content-Security-Policy'] = [policy];
  return next;
}
