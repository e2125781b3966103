import type { AppContext, View } from '../view';
import type { ActionResult, DestinationState } from '../../../main/core/contract/api/destinations';
import type { OutboxDestination } from '../../../main/core/contract/api/status';
import type { Failure } from '../../../main/core/contract/api/sync';
import type { PrefetchList } from '../../../main/core/contract/cloud';
import type { OpenCommitments } from '../../../main/core/contract/api/commitments';
import { getFailures, getOpenCommitments, getOutboxSummary, getPrefetch, overwriteFailure, pause, resume, retryAll, retryDestination, retryFailure } from '../api';
import { h, toast } from '../dom';
import { bytes, clock, dicomDate, duration, personName } from '../format';
import { drawSparkline } from '../sparkline';

const STATE_TEXT: Record<DestinationState, string> = {
  online: 'Online', offline: 'Offline', paused: 'Paused', auth: 'Sign-in rejected', forbidden: 'Access denied', idle: 'Idle',
};

interface Delivery {
  at: number;
  studyUid: string;
  destination: string;
  count: number;
}

/** Throughput samples per destination, kept across visits to the page while the app runs. */
const history = new Map<string, number[]>();
const deliveries: Delivery[] = [];

export function recordDelivery(destination: string, studyUid: string, count: number): void {
  const last = deliveries[0];
  if (last && last.destination === destination && last.studyUid === studyUid && Date.now() - last.at < 60_000) {
    last.count += count;
    last.at = Date.now();
  } else {
    deliveries.unshift({ at: Date.now(), studyUid, destination, count });
    deliveries.length = Math.min(deliveries.length, 50);
  }
}

export function syncView(context: AppContext): View {
  const cards = h('div.dest-cards');
  const failuresBody = h('tbody');
  const failuresEmpty = h('p.muted');
  const deliveriesList = h('ul.deliveries');
  const prefetchCounts = h('p.muted.prefetch-counts');
  const prefetchBody = h('tbody');
  const commitmentsNote = h('p.muted');
  const commitmentsBody = h('tbody');
  const retryAllButton = h('button.btn', { type: 'button', onclick: () => void act('Retry all', () => retryAll(destinationNames)) }, 'Retry all failed');
  let disposed = false;
  let names = new Map<string, string>();
  let destinationNames: string[] = [];

  async function act(label: string, action: () => Promise<ActionResult | { changed: number }>): Promise<void> {
    try {
      const result = await action();
      toast(`${label}: ${'changed' in result ? `${result.changed} instance(s)` : 'done'}`);
      await refresh();
    } catch (error) {
      toast(`${label} failed: ${(error as Error).message}`, 'error');
    }
  }

  function card(d: OutboxDestination): HTMLElement {
    const c = d.counts;
    const queued = c.pending.count + c.sending.count;
    const failed = c.failed.count + c.conflict.count;
    const rate = d.rate.bytesPerSecond;
    // A destination without a running worker (removed, or forwarding off) has no connection state: idle.
    const state: DestinationState = d.connection.state === 'unknown' ? 'idle' : d.connection.state;
    const eta = queued === 0 ? 'up to date' : rate > 0 && d.bytesPending ? duration(d.bytesPending / rate) : state === 'online' ? 'estimating…' : 'waiting for connection';
    const samples = history.get(d.name) ?? [];
    const canvas = h('canvas.spark', { 'aria-label': 'Throughput over the last minutes' });
    requestAnimationFrame(() => drawSparkline(canvas, samples, state === 'online' ? '#3fb68b' : '#d9a441'));
    const paused = state === 'paused';
    return h('article.dest-card', { dataset: { destination: d.name, state } },
      h('header.dest-head',
        h('div', h('h3', d.name)),
        h('span.state', { class: state }, STATE_TEXT[state], d.connection.since ? h('span.since', ` since ${clock(d.connection.since)}`) : null)),
      d.lastError && state !== 'online' ? h('p.dest-error', d.lastError) : null,
      h('div.metrics',
        metric('Queue', `${queued.toLocaleString()} images`, bytes(d.bytesPending)),
        metric('Rate', `${bytes(rate)}/s`, `${(d.rate.instancesPerMinute / 60).toFixed(1)} images/s`),
        metric('ETA', eta, d.nextAttemptAt ? `next try ${clock(d.nextAttemptAt)}` : ''),
        metric('Delivered', c.delivered.count.toLocaleString(), `${failed.toLocaleString()} failed or conflicting`)),
      canvas,
      h('footer.dest-actions',
        h('button.btn', { type: 'button', onclick: () => void act(paused ? 'Resume' : 'Pause', () => (paused ? resume(d.name) : pause(d.name))) }, paused ? 'Resume uploads' : 'Pause uploads'),
        h('button.btn', { type: 'button', disabled: failed === 0, onclick: () => void act('Retry', () => retryDestination(d.name)) }, 'Retry failed')));
  }

  function renderFailures(failures: Failure[]): void {
    failuresEmpty.textContent = failures.length === 0 ? 'No failures. Every image either went through or is still on its way.' : '';
    retryAllButton.disabled = failures.length === 0;
    failuresBody.replaceChildren(...failures.map((f) => h('tr', { dataset: { sop: f.sopInstanceUid, state: f.state } },
      h('td', clock(f.updatedAt)),
      h('td', h('a', { href: `#/study/${f.studyUid}` }, f.patientName ? personName(f.patientName) : names.get(f.studyUid) || f.studyUid)),
      h('td', f.destination),
      h('td', h('span.pill', { class: f.state }, f.state)),
      h('td.reason', f.lastError || (f.failureReason ? `failure reason ${f.failureReason}` : '–')),
      h('td.row-actions',
        h('button.btn.small', { type: 'button', onclick: () => void act('Retry', () => retryFailure(f.id)) }, 'Retry'),
        f.state === 'conflict' ? h('button.btn.small', { type: 'button', onclick: () => void act('Overwrite', () => overwriteFailure(f.id)) }, 'Overwrite') : null))));
  }

  function renderDeliveries(): void {
    deliveriesList.replaceChildren(...(deliveries.length === 0 ? [h('li.muted', 'Nothing delivered since the app started.')] :
      deliveries.slice(0, 12).map((d) => h('li',
        h('span.when', clock(d.at)),
        h('a', { href: `#/study/${d.studyUid}` }, names.get(d.studyUid) || d.studyUid),
        h('span.muted', `${d.count} image${d.count === 1 ? '' : 's'} → ${d.destination}`)))));
  }

  /** Priors fetched from the archive in the background (GET /api/prefetch): fetching first, then queued, then finished. */
  function renderPrefetch(list: PrefetchList): void {
    const c = list.counts;
    prefetchCounts.textContent = list.jobs.length === 0
      ? 'No prefetch yet: priors of arriving patients are fetched from the archive here.'
      : `${c.fetching} fetching · ${c.queued} queued · ${c.done} done · ${c.failed} failed`;
    prefetchBody.replaceChildren(...list.jobs.map((job) => h('tr', { dataset: { study: job.studyUid, state: job.state } },
      h('td', h('span.pill', { class: PREFETCH_PILL[job.state] }, job.state)),
      h('td', h('a', { href: `#/study/${job.studyUid}` }, personName(job.patientName) || job.studyUid)),
      h('td', [dicomDate(job.studyDate), job.studyDescription || job.modalities.join(' ')].filter(Boolean).join(' · ')),
      h('td', job.state === 'done' ? `${job.numLocalInstances} images` : `${job.instancesFetched} of ${job.numInstances || '?'}`),
      h('td.reason', job.state === 'failed' ? job.lastError ?? 'failed' : ''))));
  }

  /** Storage Commitment requests not yet answered: the modality keeps its images until they are. */
  function renderCommitments(open: OpenCommitments): void {
    commitmentsNote.textContent = open.modalities.length === 0 ? 'No open storage commitments: every modality that asked has its answer.' : '';
    commitmentsBody.replaceChildren(...open.modalities.map((m) => h('tr', { dataset: { ae: m.callingAe } },
      h('td', m.callingAe),
      h('td', String(m.transactions)),
      h('td', `${m.instances.toLocaleString()} image${m.instances === 1 ? '' : 's'}`),
      h('td', clock(m.oldestReceivedAt)))));
  }

  async function refresh(): Promise<void> {
    names = new Map([...context.store.rows.values()].map((r) => [r.uid, r.patientName ? `${r.patientName} · ${r.description || r.modalities.join(' ')}` : r.uid]));
    try {
      const summary = await getOutboxSummary();
      if (disposed) return;
      const routed = summary.destinations.filter((d) => !d.unrouted);
      context.store.configured = routed.length > 0;
      destinationNames = routed.map((d) => d.name);
      for (const d of routed) {
        const samples = history.get(d.name) ?? [];
        samples.push(d.rate.bytesPerSecond);
        if (samples.length > 90) samples.shift();
        history.set(d.name, samples);
      }
      if (routed.length === 0) {
        // Rows received while no destination existed wait under '*' until one is added.
        const unrouted = summary.destinations.filter((d) => d.unrouted).reduce((n, d) => n + d.counts.pending.count + d.counts.sending.count, 0);
        cards.replaceChildren(h('div.empty-card',
          h('h3', 'No cloud destination configured'),
          h('p', unrouted > 0
            ? `${unrouted.toLocaleString()} image${unrouted === 1 ? ' is' : 's are'} stored safely here and will be uploaded as soon as a destination is added.`
            : 'Images are stored here and will be uploaded once a destination is added.'),
          h('a.btn.primary', { href: '#/settings' }, 'Add a destination')));
      } else {
        cards.replaceChildren(...routed.map(card));
      }
    } catch (error) {
      cards.replaceChildren(h('p.notice', `Cannot read the upload status: ${(error as Error).message}`));
    }
    try {
      renderFailures((await getFailures()).items);
    } catch (error) {
      failuresEmpty.textContent = `Cannot read failures: ${(error as Error).message}`;
    }
    renderDeliveries();
    try {
      const open = await getOpenCommitments();
      if (!disposed) renderCommitments(open);
    } catch (error) {
      commitmentsNote.textContent = `Cannot read the open commitments: ${(error as Error).message}`;
    }
    try {
      const list = await getPrefetch();
      if (!disposed) renderPrefetch(list);
    } catch (error) {
      prefetchCounts.textContent = `Cannot read the prefetch jobs: ${(error as Error).message}`;
    }
  }

  const element = h('section.view.sync',
    h('header.toolbar', h('h1', 'Cloud sync'), h('span.grow'), retryAllButton),
    cards,
    h('div.sync-columns',
      h('div.panel', h('h2', 'Failures'), failuresEmpty,
        h('div.table-wrap', h('table.grid', h('thead', h('tr', ...['When', 'Study', 'Destination', 'State', 'Reason', ''].map((t) => h('th', t)))), failuresBody))),
      h('div.panel.narrow', h('h2', 'Recent deliveries'), deliveriesList)),
    h('div.panel.commitments', h('h2', 'Open storage commitments'), commitmentsNote,
      h('div.table-wrap', h('table.grid', h('thead', h('tr', ...['Modality', 'Requests', 'Images', 'Waiting since'].map((t) => h('th', t)))), commitmentsBody))),
    h('div.panel.prefetch-list', h('h2', 'Prefetch from the archive'), prefetchCounts,
      h('div.table-wrap', h('table.grid', h('thead', h('tr', ...['State', 'Patient', 'Study', 'Images', 'Reason'].map((t) => h('th', t)))), prefetchBody))));

  void refresh();
  const poll = setInterval(() => void refresh(), 2000);
  return {
    element,
    onEvent: (event) => {
      if (event.type === 'outbox-changed' && event.data.state === 'delivered') renderDeliveries();
    },
    dispose: () => {
      disposed = true;
      clearInterval(poll);
    },
  };
}

const PREFETCH_PILL: Record<PrefetchList['jobs'][number]['state'], string> = { queued: 'pending', fetching: 'uploading', done: 'done', failed: 'failed' };

function metric(label: string, main: string, sub: string): HTMLElement {
  return h('div.metric', h('div.metric-label', label), h('div.metric-value', main), h('div.metric-sub', sub));
}
