// The desktop shell: one window on the local server's origin, a tray, and the same appliance core as
// headless mode. Decisions live in small pure modules beside this file; this one only wires Electron.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BrowserWindow, Menu, Notification, Tray, app, dialog, ipcMain, nativeImage, powerSaveBlocker, safeStorage, session, shell } from 'electron';
import { Appliance, withSystemProxy } from '../core/appliance.js';
import { APP_ID } from './app-identity.js';
import { DesktopPrefsFile, parseDesktopPrefs } from './desktop-prefs.js';
import { registerBridgeHandlers } from './ipc.js';
import { autostartCommand, autostartFile, setLinuxAutostart } from './linux-autostart.js';
import { isOwnCertificate, windowOrigin } from './own-certificate.js';
import { safeStorageSecretBox } from './safe-storage-box.js';
import { resolveSystemProxy } from './system-proxy.js';
import { readTraySummary, trackDestinationStates, watchPermanentFailures } from './outbox-watch.js';
import { guardQuit } from './quit-guard.js';
import { attachNavigationGuards, denyAllPermissions, secureWebPreferences, withCsp } from './security.js';
import { findAssociationCounter, SuspensionGuard } from './suspension-guard.js';
import { findPausable, trayMenuItems } from './tray-menu.js';
import { trayStatus, type TrayColour } from './tray-state.js';

const resourcesDir = app.isPackaged ? join(process.resourcesPath, 'resources') : join(app.getAppPath(), 'resources');
const preloadPath = join(__dirname, '..', 'preload', 'index.cjs');

let mainWindow: BrowserWindow | null = null;
let tray: Tray | null = null;

function trayIcon(colour: TrayColour): Electron.NativeImage {
  return nativeImage.createFromPath(join(resourcesDir, 'icons', `tray-${colour}.png`));
}

async function start(): Promise<void> {
  if (!app.requestSingleInstanceLock()) {
    app.quit();
    return;
  }
  app.on('second-instance', () => showWindow());
  // Windows groups the taskbar button and shows notifications under this id, the installer's too.
  if (process.platform === 'win32') app.setAppUserModelId(APP_ID);
  await app.whenReady();

  const dataDir = app.getPath('userData');
  const safe = safeStorageSecretBox(safeStorage, dataDir);
  // With no proxy in settings or the environment, requests leaving the box take the desktop's system proxy.
  const systemProxy = await resolveSystemProxy(session.defaultSession);
  const appliance = await Appliance.create({
    dataDir,
    announce: (line) => appliance.logger.info({ event: 'listener' }, line),
    forward: { ...(safe.box ? { secretBox: safe.box } : {}), proxyEnvironment: withSystemProxy(process.env, systemProxy) },
  });
  const log = appliance.logger.child({ component: 'electron' });
  if (safe.reason) log.warn({ event: 'safe-storage-refused', reason: safe.reason }, `secrets are sealed with the key file in the data dir: ${safe.reason}`);
  if (safe.warning) log.warn({ event: 'safe-storage-weak', reason: safe.warning }, safe.warning);
  for (const [scheme, resolved] of Object.entries(systemProxy)) {
    if (resolved.unsupported) log.warn({ event: 'system-proxy-unsupported', scheme, reason: resolved.unsupported }, resolved.unsupported);
    else if (resolved.url) log.info({ event: 'system-proxy', scheme, proxy: resolved.url }, `the system proxy for ${scheme}: ${resolved.url}`);
  }
  guardQuit(app, () => appliance.stop(), (error) => log.error({ event: 'stop-failed', reason: String(error) }, 'appliance did not stop cleanly'));
  await appliance.start();

  const ownFingerprint = appliance.httpsFingerprint;
  const appOrigin = windowOrigin(appliance.settings.http.host, appliance.settings.http.port, Boolean(ownFingerprint));
  // Beyond loopback the server speaks HTTPS, often with a self-signed certificate: the window trusts exactly that one.
  app.on('certificate-error', (event, _contents, url, _error, certificate, callback) => {
    if (!isOwnCertificate(url, certificate.data, appOrigin, ownFingerprint)) return;
    event.preventDefault();
    callback(true);
  });
  const prefsFile = new DesktopPrefsFile(dataDir, parseDesktopPrefs(readJson(join(resourcesDir, 'default-desktop.json'))));
  let prefs = prefsFile.read();

  denyAllPermissions(session.defaultSession, (permission) => log.warn({ event: 'permission-denied', permission }, 'permission request denied'));
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: withCsp(details.url, appOrigin, (details.responseHeaders ?? {}) as Record<string, string[]>) });
  });
  app.on('web-contents-created', (_event, contents) => {
    attachNavigationGuards(contents, {
      appOrigin,
      openExternal: (url) => shell.openExternal(url),
      onBlocked: (what, url) => log.warn({ event: 'blocked', what, url }, 'blocked navigation away from the app'),
    });
  });

  registerBridgeHandlers(ipcMain, {
    appOrigin,
    bootstrap: () => ({ apiBaseUrl: appOrigin, sessionToken: appliance.apiToken, appVersion: app.getVersion() }),
    openDataFolder: async () => {
      const problem = await shell.openPath(dataDir);
      if (problem) throw new Error(problem);
    },
    pickFolder: async () => {
      const result = mainWindow ? await dialog.showOpenDialog(mainWindow, { properties: ['openDirectory', 'createDirectory'] }) : undefined;
      return result && !result.canceled && result.filePaths[0] ? result.filePaths[0] : null;
    },
    onRejected: (channel, url) => log.warn({ event: 'ipc-rejected', channel, url }, 'IPC from an untrusted frame refused'),
  });

  function createWindow(): void {
    mainWindow = new BrowserWindow({
      width: 1400,
      height: 900,
      minWidth: 960,
      minHeight: 600,
      show: false,
      title: 'DICOM Edge',
      backgroundColor: '#0f1720',
      webPreferences: secureWebPreferences(preloadPath),
    });
    mainWindow.removeMenu();
    mainWindow.once('ready-to-show', () => {
      if (!prefs.startMinimised) mainWindow?.show();
    });
    // Closing the window keeps the appliance receiving in the tray; Quit is in the tray menu.
    mainWindow.on('close', (event) => {
      if (!quitting) {
        event.preventDefault();
        mainWindow?.hide();
      }
    });
    mainWindow.on('closed', () => (mainWindow = null));
    void mainWindow.loadURL(`${appOrigin}/`);
  }

  function showWindow(): void {
    if (!mainWindow) createWindow();
    mainWindow?.show();
    mainWindow?.focus();
  }

  let quitting = false;
  app.on('before-quit', () => (quitting = true));

  // Tray: colour from the outbox, menu with open / pause / quit.
  const forward = appliance.forward ?? findPausable(appliance.services);
  let paused = false;
  const destinationNames = (): string[] => appliance.settings.destinations.filter((d) => d.enabled).map((d) => d.name);
  const { states } = trackDestinationStates(appliance, () => scheduleTrayUpdate());
  tray = new Tray(trayIcon('green'));
  let trayTimer: ReturnType<typeof setTimeout> | undefined;
  function scheduleTrayUpdate(): void {
    trayTimer ??= setTimeout(() => {
      trayTimer = undefined;
      updateTray();
    }, 500);
  }
  // No suspension while a modality is sending or uploads are under way (associations have no events: polled).
  const associations = findAssociationCounter(appliance.services);
  const suspension = new SuspensionGuard(powerSaveBlocker, (holding, activity) =>
    log.info({ event: holding ? 'suspension-blocked' : 'suspension-allowed', ...activity }, holding ? 'busy: the OS may not suspend the app' : 'idle: the OS may suspend the app'));
  const checkActivity = (sending: number) => suspension.update({ openAssociations: associations?.openAssociations ?? 0, sending });
  const sendingNow = (summary: ReturnType<typeof readTraySummary>) => summary.destinations.reduce((sum, d) => sum + (d.counts.sending ?? 0), 0);
  setInterval(() => checkActivity(sendingNow(readTraySummary(appliance, destinationNames(), states))), 5_000).unref();
  app.on('will-quit', () => suspension.release());

  function updateTray(): void {
    if (!tray) return;
    const summary = readTraySummary(appliance, destinationNames(), states);
    checkActivity(sendingNow(summary));
    const status = trayStatus(summary);
    tray.setImage(trayIcon(status.colour));
    tray.setToolTip(status.tooltip);
    tray.setContextMenu(Menu.buildFromTemplate(trayMenuItems(
      { paused, canPause: forward !== undefined && destinationNames().length > 0, startAtLogin: prefs.startAtLogin, startMinimised: prefs.startMinimised },
      {
        open: showWindow,
        setPaused: (value) => {
          for (const name of destinationNames()) (value ? forward?.pause(name) : forward?.resume(name));
          paused = value;
          updateTray();
        },
        setStartAtLogin: (value) => {
          prefs = { ...prefs, startAtLogin: value };
          prefsFile.write(prefs);
          if (process.platform === 'linux') setLinuxAutostart(value, { file: autostartFile(), command: autostartCommand(process.execPath) });
          else app.setLoginItemSettings({ openAtLogin: value });
          updateTray();
        },
        setStartMinimised: (value) => {
          prefs = { ...prefs, startMinimised: value };
          prefsFile.write(prefs);
          updateTray();
        },
        quit: () => app.quit(),
      },
    )));
  }
  tray.on('click', showWindow);
  appliance.archive.events.on('outbox-changed', scheduleTrayUpdate);
  appliance.archive.events.on('study-updated', scheduleTrayUpdate);
  updateTray();

  watchPermanentFailures(appliance.archive.events, (notice) => {
    if (!Notification.isSupported()) return;
    const notification = new Notification({
      title: 'DICOM Edge: upload failed',
      body: `${notice.count} image${notice.count === 1 ? '' : 's'} of a study could not be delivered to ${notice.destination}: ${notice.reason}`,
    });
    notification.on('click', showWindow);
    notification.show();
  });

  app.on('window-all-closed', () => {
    /* stay in the tray */
  });
  app.on('activate', showWindow);
  createWindow();
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

start().catch((error: unknown) => {
  dialog.showErrorBox('DICOM Edge cannot start', (error as Error)?.message ?? String(error));
  app.exit(1);
});
