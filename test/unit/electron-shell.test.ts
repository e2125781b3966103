import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { IPC_CHANNELS } from '../../preload/api-types.js';
import { DesktopPrefsFile, parseDesktopPrefs } from '../../main/electron/desktop-prefs.js';
import { registerBridgeHandlers, UntrustedSenderError, type IpcMainLike } from '../../main/electron/ipc.js';
import { readTraySummary, watchPermanentFailures, type FailureNotice } from '../../main/electron/outbox-watch.js';
import { guardQuit } from '../../main/electron/quit-guard.js';
import { findPausable, trayMenuItems } from '../../main/electron/tray-menu.js';
import { trayStatus, type DestinationSummary } from '../../main/electron/tray-state.js';
import { Archive } from '../../main/core/store/archive.js';
import { ArchiveEvents } from '../../main/core/store/events.js';
import { indexDb } from '../support/index-db.js';
import { makeInstance } from '../support/instance.js';

const APP = 'http://127.0.0.1:8780';
const dest = (name: string, state: DestinationSummary['state'], counts: DestinationSummary['counts']): DestinationSummary => ({ name, state, counts });

describe('electron tray state', () => {
  it('green when every instance is delivered', () => {
    const status = trayStatus({ destinations: [dest('azure', 'online', { delivered: 120 })], unrouted: 0 });
    assert.deepEqual(status, { colour: 'green', tooltip: 'DICOM Edge: all delivered' });
    assert.equal(trayStatus({ destinations: [], unrouted: 0 }).colour, 'green');
  });

  it('amber while instances are pending or sending, or a destination is offline or paused', () => {
    assert.equal(trayStatus({ destinations: [dest('azure', 'online', { pending: 3, delivered: 5 })], unrouted: 0 }).colour, 'amber');
    assert.equal(trayStatus({ destinations: [dest('azure', 'online', { sending: 1 })], unrouted: 0 }).colour, 'amber');
    const offline = trayStatus({ destinations: [dest('azure', 'offline', { delivered: 5 })], unrouted: 0 });
    assert.equal(offline.colour, 'amber');
    assert.match(offline.tooltip, /azure offline/);
    assert.equal(trayStatus({ destinations: [dest('azure', 'paused', {})], unrouted: 0 }).colour, 'amber');
  });

  it('amber with a clear tooltip when data waits and no destination is configured', () => {
    const status = trayStatus({ destinations: [], unrouted: 7 });
    assert.equal(status.colour, 'amber');
    assert.match(status.tooltip, /7 instances waiting, no destination configured/);
  });

  it('red on failures, conflicts, or rejected credentials, even while others are pending', () => {
    const failed = trayStatus({ destinations: [dest('azure', 'online', { failed: 1, pending: 10 })], unrouted: 0 });
    assert.equal(failed.colour, 'red');
    assert.match(failed.tooltip, /1 instance failed/);
    assert.equal(trayStatus({ destinations: [dest('a', 'online', { conflict: 2 })], unrouted: 0 }).colour, 'red');
    assert.match(trayStatus({ destinations: [dest('a', 'auth', {})], unrouted: 0 }).tooltip, /a: sign-in rejected/);
    assert.equal(trayStatus({ destinations: [dest('a', 'forbidden', {})], unrouted: 0 }).colour, 'red');
  });

  it('the tray summary counts the outbox per enabled destination, and what waits for one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tray-summary-'));
    const { archive } = await Archive.open({ dataDir: dir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger: pino({ level: 'silent' }) });
    try {
      const store = (count: number) => Promise.all(Array.from({ length: count }, () =>
        archive.ingest(Readable.from([makeInstance({ rows: 8, columns: 8 })]), { callingAe: 'CT1', peer: 'test' })));
      await store(2); // no destination yet: they wait under '*'
      archive.setRoute(() => ['azure', 'old']);
      const [delivered] = await store(3);
      indexDb(archive).prepare("UPDATE outbox SET state = 'delivered' WHERE sop_instance_uid = ? AND destination = 'azure'").run(delivered!.header.sopInstanceUid);

      const summary = readTraySummary({ archive }, ['azure', 'quiet'], new Map([['azure', 'online']]));
      assert.deepEqual(summary, {
        destinations: [
          { name: 'azure', state: 'online', counts: { pending: 2, delivered: 1 } },
          { name: 'quiet', state: 'idle', counts: {} },
        ],
        unrouted: 2,
      });
    } finally {
      await archive.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the tray menu offers open, pause uploads and quit', () => {
    const calls: string[] = [];
    const items = trayMenuItems({ paused: false, canPause: true, startAtLogin: false, startMinimised: true }, {
      open: () => calls.push('open'), setPaused: (v) => calls.push(`paused:${v}`), quit: () => calls.push('quit'),
      setStartAtLogin: (v) => calls.push(`login:${v}`), setStartMinimised: (v) => calls.push(`min:${v}`),
    });
    const byLabel = (prefix: string) => items.find((i) => i.label?.startsWith(prefix))!;
    byLabel('Open').click!();
    byLabel('Pause uploads').click!();
    byLabel('Start at login').click!();
    byLabel('Start minimised').click!();
    byLabel('Quit').click!();
    assert.deepEqual(calls, ['open', 'paused:true', 'login:true', 'min:false', 'quit']);
    assert.equal(byLabel('Start minimised').checked, true);
  });

  it('finds the forward service to pause by its control methods', () => {
    const forward = { name: 'forward', pause() {}, resume() {} };
    assert.equal(findPausable([{ name: 'dimse' }, forward]), forward);
    const wrapped = { name: 'forward', control: { pause() {}, resume() {} } };
    assert.equal(findPausable([wrapped]), wrapped.control);
    assert.equal(findPausable([{ name: 'web' }]), undefined);
  });
});

describe('electron IPC, quit and notifications', () => {
  function fakeIpc() {
    const on = new Map<string, (event: { senderFrame: unknown; returnValue?: unknown }) => void>();
    const handle = new Map<string, (event: { senderFrame: unknown }) => unknown>();
    const ipc = { on: (c: string, l: never) => on.set(c, l), handle: (c: string, l: never) => handle.set(c, l) } as unknown as IpcMainLike;
    return { ipc, on, handle };
  }

  it('answers the bridge only for the app window and rejects other frames', async () => {
    const { ipc, on, handle } = fakeIpc();
    const rejected: string[] = [];
    let opened = 0;
    registerBridgeHandlers(ipc, {
      appOrigin: APP,
      bootstrap: () => ({ apiBaseUrl: APP, sessionToken: 'tok', appVersion: '1.0.0' }),
      openDataFolder: async () => void opened++,
      pickFolder: async () => '/data',
      onRejected: (channel, url) => rejected.push(`${channel} ${url}`),
    });
    assert.deepEqual([...on.keys()], [IPC_CHANNELS.bootstrap]);
    const good = { senderFrame: { url: `${APP}/`, parent: null } } as { senderFrame: unknown; returnValue?: unknown };
    on.get(IPC_CHANNELS.bootstrap)!(good);
    assert.deepEqual(good.returnValue, { apiBaseUrl: APP, sessionToken: 'tok', appVersion: '1.0.0' });
    const evil = { senderFrame: { url: 'https://evil.example/', parent: null } } as { senderFrame: unknown; returnValue?: unknown };
    on.get(IPC_CHANNELS.bootstrap)!(evil);
    assert.equal(evil.returnValue, null);
    assert.equal(await handle.get(IPC_CHANNELS.pickFolder)!(good), '/data');
    await handle.get(IPC_CHANNELS.openDataFolder)!(good);
    assert.equal(opened, 1);
    assert.throws(() => handle.get(IPC_CHANNELS.openDataFolder)!({ senderFrame: { url: `${APP}/`, parent: {} } }), UntrustedSenderError);
    assert.throws(() => handle.get(IPC_CHANNELS.pickFolder)!({ senderFrame: null }), UntrustedSenderError);
    assert.equal(opened, 1);
    assert.deepEqual(rejected, [`${IPC_CHANNELS.bootstrap} https://evil.example/`, `${IPC_CHANNELS.openDataFolder} ${APP}/`, `${IPC_CHANNELS.pickFolder} (gone)`]);
  });

  it('quit waits for the appliance to stop, once, then exits', async () => {
    let listener: ((event: { preventDefault(): void }) => void) | undefined;
    const exits: number[] = [];
    let finishStop!: () => void;
    let stops = 0;
    guardQuit({ on: (_e, l) => (listener = l), exit: (code) => exits.push(code ?? 0) }, () => {
      stops++;
      return new Promise<void>((resolve) => (finishStop = resolve));
    }, () => undefined);
    let prevented = 0;
    listener!({ preventDefault: () => prevented++ });
    listener!({ preventDefault: () => prevented++ });
    assert.equal(prevented, 2);
    assert.equal(stops, 1);
    assert.deepEqual(exits, []);
    finishStop();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(exits, [0]);
  });

  it('one notification per failing study and destination, with the count and reason', async () => {
    const events = new ArchiveEvents();
    const notices: FailureNotice[] = [];
    const stop = watchPermanentFailures(events, (n) => notices.push(n), 10);
    for (const sop of ['1', '2', '3']) {
      events.emit('outbox-changed', { studyUid: '1.2.3', destination: 'azure', sopInstanceUids: [sop], state: 'failed', reason: '43265 study UID mismatch' });
    }
    events.emit('outbox-changed', { studyUid: '1.2.4', destination: 'azure', sopInstanceUids: ['9'], state: 'delivered' });
    await new Promise((r) => setTimeout(r, 30));
    stop();
    assert.deepEqual(notices, [{ studyUid: '1.2.3', destination: 'azure', count: 3, reason: '43265 study UID mismatch' }]);
  });

  it('desktop prefs fall back to defaults and round-trip', async () => {
    assert.deepEqual(parseDesktopPrefs({ startMinimised: 'yes', startAtLogin: true }), { startMinimised: false, startAtLogin: true });
    const dir = await mkdtemp(join(tmpdir(), 'edge-prefs-'));
    try {
      const file = new DesktopPrefsFile(dir);
      assert.deepEqual(file.read(), { startMinimised: false, startAtLogin: false });
      file.write({ startMinimised: true, startAtLogin: false });
      assert.deepEqual(new DesktopPrefsFile(dir).read(), { startMinimised: true, startAtLogin: false });
      await writeFile(file.path, '{broken');
      assert.deepEqual(file.read(), { startMinimised: false, startAtLogin: false });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
