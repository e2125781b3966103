import './styles.css';
import { getInfo, getOutboxSummary, session, subscribeEvents } from './api';
import { clear, h } from './dom';
import { bytes } from './format';
import { StudyStore } from './study-store';
import type { AppContext, View } from './view';
import { settingsView } from './views/settings';
import { studiesView } from './views/studies';
import { studyView } from './views/study';
import { recordDelivery, syncView } from './views/sync';
import { viewerView } from './views/viewer';
import { worklistView } from './views/worklist';

const store = new StudyStore();
const app = document.getElementById('app')!;
const main = h('main.content', { id: 'content' });
const liveDot = h('span.live-dot', { title: 'Live updates' });
const liveText = h('span.live-text', 'connecting…');
const footerInfo = h('span.footer-info');
const syncBadge = h('span.nav-badge', { hidden: true });

const navItem = (hash: string, label: string, icon: string, extra?: Node) =>
  h('a.nav-item', { href: hash, dataset: { route: hash.slice(2).split('/')[0]! } }, h('span.nav-icon', icon), h('span', label), extra ?? null);

app.append(
  h('aside.sidebar',
    h('div.brand', h('div.brand-mark', 'DE'), h('div', h('div.brand-name', 'DICOM Edge'), h('div.brand-sub', 'Imaging edge appliance'))),
    h('nav.nav',
      navItem('#/studies', 'Studies', '▤'),
      navItem('#/worklist', 'Worklist', '☰'),
      navItem('#/sync', 'Cloud sync', '⇪', syncBadge),
      navItem('#/settings', 'Settings', '⚙')),
    h('div.sidebar-foot', h('div.live', liveDot, liveText), footerInfo)),
  main,
);

let current: View | undefined;

const context: AppContext = {
  store,
  navigate: (hash) => {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  refreshSummary: async () => {
    try {
      const summary = await getOutboxSummary();
      const routed = summary.destinations.filter((d) => !d.unrouted);
      const flipped = store.configured !== routed.length > 0;
      store.configured = routed.length > 0;
      // Rows that waited for a destination are assigned to it without per-study events: re-read them all.
      if (flipped && store.loaded) void store.loadSync().then((changed) => changed && store.notify());
      const failed = routed.reduce((n, d) => n + d.counts.failed.count + d.counts.conflict.count, 0);
      syncBadge.hidden = failed === 0;
      syncBadge.textContent = String(failed);
    } catch {
      store.configured = false;
    }
  },
};

function route(): void {
  const hash = location.hash || '#/studies';
  const [name = 'studies', ...rest] = hash.slice(2).split('/').map(decodeURIComponent);
  current?.dispose?.();
  clear(main);
  for (const item of document.querySelectorAll<HTMLElement>('.nav-item')) {
    item.classList.toggle('active', item.dataset.route === name || (!['sync', 'settings', 'worklist'].includes(name) && item.dataset.route === 'studies'));
  }
  switch (name) {
    case 'study': current = studyView(context, rest[0] ?? ''); break;
    case 'viewer': current = viewerView(context, rest[0] ?? '', rest[1] ?? ''); break;
    case 'sync': current = syncView(context); break;
    case 'worklist': current = worklistView(context); break;
    case 'settings': current = settingsView(context); break;
    default: current = studiesView(context);
  }
  main.append(current.element);
  document.body.dataset.view = name;
}

window.addEventListener('hashchange', route);

subscribeEvents(
  (event) => {
    if (event.type === 'study-updated' || event.type === 'instance-deleted') {
      store.studyChanged(event.data.studyUid);
      scheduleInfo();
    }
    if (event.type === 'outbox-changed') {
      store.syncChanged(event.data.studyUid);
      if (event.data.state === 'delivered') recordDelivery(event.data.destination, event.data.studyUid, event.data.sopInstanceUids.length);
    }
    if (event.type === 'outbox-changed' || event.type === 'destination-status') scheduleSummary();
    if (event.type === 'destination-status') scheduleInfo();
    current?.onEvent?.(event);
  },
  (connected) => {
    liveDot.classList.toggle('on', connected);
    liveText.textContent = connected ? 'Live' : 'Reconnecting…';
    if (connected && store.loaded) void store.load();
  },
);

let summaryTimer: ReturnType<typeof setTimeout> | undefined;
function scheduleSummary(): void {
  summaryTimer ??= setTimeout(() => {
    summaryTimer = undefined;
    void context.refreshSummary();
  }, 1000);
}

// The footer's "stored" size follows what arrives; read at page load only, it said 0 B next to a full list.
let infoTimer: ReturnType<typeof setTimeout> | undefined;
function scheduleInfo(): void {
  infoTimer ??= setTimeout(() => {
    infoTimer = undefined;
    void loadInfo();
  }, 1000);
}

async function loadInfo(): Promise<void> {
  try {
    const info = await getInfo();
    const archive = info.archive === null ? 'none' : info.archive.state === 'offline' ? 'offline' : info.archive.state === 'online' ? 'online' : 'unknown';
    if (archive !== store.archive) {
      store.archive = archive;
      store.notify();
    }
    footerInfo.textContent = [`${info.aeTitle} · port ${info.ports.dimse}`, `${bytes(info.storage.usedBytes)} stored`,
      ...(info.https ? [`HTTPS ${info.https.fingerprint256.slice(0, 11)}…`] : []), `v${session.appVersion || info.version}`].join(' · ');
    // The whole fingerprint, to compare with what a browser on the LAN shows for this appliance.
    footerInfo.title = info.https ? `HTTPS certificate (${info.https.source}) SHA-256 ${info.https.fingerprint256}` : '';
  } catch {
    footerInfo.textContent = '';
  }
}

route();
void context.refreshSummary().then(() => store.load());
void loadInfo();
setInterval(() => void loadInfo(), 15_000);
// Reconcile studies still on their way (retries and backoff change rows without an event per study).
setInterval(() => {
  const open = [...store.rows.values()].filter((r) => r.sync && r.sync.counts.delivered < r.sync.total).map((r) => r.uid).slice(0, 2000);
  if (store.configured && open.length > 0) void store.loadSync(open).then((changed) => changed && store.notify());
}, 5_000);
