import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CONTENT_SECURITY_POLICY, attachNavigationGuards, denyAllPermissions, externalUrlToOpen, isAppUrl, isTrustedSender,
  DECODE_WORKER_CSP, secureWebPreferences, withCsp, type GuardedContents,
} from '../../main/electron/security.js';

const APP = 'http://127.0.0.1:8780';

/** A stand-in for Electron's WebContents that records listeners and the window-open handler. */
function fakeContents() {
  const listeners = new Map<string, (event: { preventDefault(): void }, url?: string) => void>();
  let openHandler: ((details: { url: string }) => { action: string }) | undefined;
  const contents = {
    on(event: string, listener: (event: { preventDefault(): void }, url?: string) => void) {
      listeners.set(event, listener);
      return contents;
    },
    setWindowOpenHandler(handler: (details: { url: string }) => { action: string }) {
      openHandler = handler;
    },
  };
  const fire = (event: string, url?: string) => {
    let prevented = false;
    listeners.get(event)!({ preventDefault: () => (prevented = true) }, url);
    return prevented;
  };
  return { contents: contents as unknown as GuardedContents, fire, open: (url: string) => openHandler!({ url }) };
}

describe('electron window security', () => {
  it('webPreferences keep isolation, sandbox and web security on and node off', () => {
    const prefs = secureWebPreferences('/app/preload/index.cjs');
    assert.equal(prefs.preload, '/app/preload/index.cjs');
    assert.equal(prefs.contextIsolation, true);
    assert.equal(prefs.sandbox, true);
    assert.equal(prefs.nodeIntegration, false);
    assert.equal(prefs.nodeIntegrationInWorker, false);
    assert.equal(prefs.nodeIntegrationInSubFrames, false);
    assert.equal(prefs.webSecurity, true);
    assert.equal(prefs.allowRunningInsecureContent, false);
    assert.equal(prefs.webviewTag, false);
  });

  it('the CSP allows only the app origin, wasm codecs and blob workers', () => {
    assert.match(CONTENT_SECURITY_POLICY, /default-src 'self'/);
    assert.match(CONTENT_SECURITY_POLICY, /script-src 'self' 'wasm-unsafe-eval'(;|$)/);
    assert.match(CONTENT_SECURITY_POLICY, /object-src 'none'/);
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|'unsafe-eval'/);
    const headers = withCsp(`${APP}/index.html`, APP, { 'content-security-policy': ['default-src *'], 'Content-Type': ['text/html'] });
    assert.deepEqual(headers['Content-Security-Policy'], [CONTENT_SECURITY_POLICY]);
    assert.equal(headers['content-security-policy'], undefined);
    assert.deepEqual(headers['Content-Type'], ['text/html']);
    const foreign = { 'X': ['1'] };
    assert.equal(withCsp('https://example.org/', APP, foreign), foreign);
  });

  it('only the decode worker script may eval, under its own policy', () => {
    const worker = withCsp(`${APP}/assets/index.worker.bundle.min.worker-AbC_12.js`, APP, { 'content-security-policy': ['default-src *'] });
    assert.deepEqual(worker['Content-Security-Policy'], [DECODE_WORKER_CSP]);
    assert.match(DECODE_WORKER_CSP, /'unsafe-eval'/);
    for (const path of ['/assets/index-ZZ.js', '/assets/index.worker.bundle.min.worker-x.js/../evil.js', '/index.worker.bundle.min.worker-x.js']) {
      assert.deepEqual(withCsp(`${APP}${path}`, APP, {})['Content-Security-Policy'], [CONTENT_SECURITY_POLICY], path);
    }
    assert.doesNotMatch(CONTENT_SECURITY_POLICY, /'unsafe-eval'/);
  });

  it('app URLs are exactly the app origin', () => {
    assert.equal(isAppUrl(`${APP}/#/studies`, APP), true);
    assert.equal(isAppUrl('http://127.0.0.1:8781/', APP), false);
    assert.equal(isAppUrl('https://127.0.0.1:8780/', APP), false);
    assert.equal(isAppUrl('http://localhost:8780/', APP), false);
    assert.equal(isAppUrl('file:///etc/passwd', APP), false);
    assert.equal(isAppUrl('not a url', APP), false);
  });

  it('only plain http(s) links to other origins may open externally', () => {
    assert.equal(externalUrlToOpen('https://learn.microsoft.com/azure/healthcare-apis/', APP), 'https://learn.microsoft.com/azure/healthcare-apis/');
    assert.equal(externalUrlToOpen('http://example.org/a?b=1', APP), 'http://example.org/a?b=1');
    for (const bad of ['file:///etc/passwd', 'javascript:alert(1)', 'smb://host/share', 'https://user:pw@example.org/',
      `${APP}/api/info`, 'ms-msdt:/id', 'data:text/html,hi', '']) {
      assert.equal(externalUrlToOpen(bad, APP), null, bad);
    }
  });

  it('will-navigate and will-redirect stay on the app origin; external links go to the OS browser', () => {
    const opened: string[] = [];
    const blocked: string[] = [];
    const { contents, fire } = fakeContents();
    attachNavigationGuards(contents, { appOrigin: APP, openExternal: (url) => opened.push(url), onBlocked: (_w, url) => blocked.push(url) });
    assert.equal(fire('will-navigate', `${APP}/#/sync`), false);
    assert.equal(fire('will-navigate', 'https://evil.example/'), true);
    assert.equal(fire('will-redirect', 'file:///etc/passwd'), true);
    assert.equal(fire('will-attach-webview'), true);
    assert.deepEqual(opened, ['https://evil.example/']);
    assert.deepEqual(blocked, ['file:///etc/passwd']);
  });

  it('window.open is always denied; a valid external link is opened by the shell instead', () => {
    const opened: string[] = [];
    const { contents, open } = fakeContents();
    attachNavigationGuards(contents, { appOrigin: APP, openExternal: (url) => opened.push(url) });
    assert.deepEqual(open('https://microsoft.com/devicelogin'), { action: 'deny' });
    assert.deepEqual(open(`${APP}/#/viewer`), { action: 'deny' });
    assert.deepEqual(open('javascript:alert(1)'), { action: 'deny' });
    assert.deepEqual(opened, ['https://microsoft.com/devicelogin']);
  });

  it('every permission request and check is denied', () => {
    let requestHandler: ((c: unknown, p: string, cb: (granted: boolean) => void) => void) | undefined;
    let checkHandler: ((c: unknown, p: string) => boolean) | undefined;
    const denied: string[] = [];
    denyAllPermissions({
      setPermissionRequestHandler: (h) => (requestHandler = h),
      setPermissionCheckHandler: (h) => (checkHandler = h),
    }, (p) => denied.push(p));
    for (const permission of ['media', 'geolocation', 'notifications', 'clipboard-read', 'openExternal']) {
      let granted: boolean | undefined;
      requestHandler!({}, permission, (g) => (granted = g));
      assert.equal(granted, false, permission);
      assert.equal(checkHandler!({}, permission), false);
    }
    assert.equal(denied.length, 5);
  });

  it('IPC senders must be the top frame on the app origin', () => {
    assert.equal(isTrustedSender({ url: `${APP}/#/settings`, parent: null }, APP), true);
    assert.equal(isTrustedSender({ url: `${APP}/`, parent: { url: APP } }, APP), false);
    assert.equal(isTrustedSender({ url: 'https://evil.example/', parent: null }, APP), false);
    assert.equal(isTrustedSender(null, APP), false);
    assert.equal(isTrustedSender(undefined, APP), false);
  });
});
