import { TAG, type DicomJson } from '../../../main/core/contract/dicom-json';
import type { AppContext, View } from '../view';
import type { ActionResult } from '../../../main/core/contract/api/destinations';
import type { Delivery, InstanceSync } from '../../../main/core/contract/api/sync';
import {
  ApiError, changedBy, deleteStudy, getStudySyncDetail, imageUrl, overwriteStudy, pinStudy, queryStudies, querySeries, retrieveStudy, retryStudy,
  unpinStudy,
} from '../api';
import { h, toast } from '../dom';
import { dicomDate, dicomTime, num, str } from '../format';
import { locationLabel, progressOf, syncLabel, toRow, type StudyProgress } from '../study-store';
import type { StudySyncDetail } from '../../../main/core/contract/api/sync';

export function studyView(context: AppContext, studyUid: string): View {
  const head = h('header.study-head');
  const actions = h('div.actions');
  const seriesGrid = h('div.series-grid');
  const instancesBody = h('tbody');
  const instancesNote = h('p.muted');
  const objectUrls: string[] = [];
  let sync: StudyProgress | undefined;
  let disposed = false;

  const retryButton = h('button.btn', { type: 'button', onclick: () => act('Retry', () => retryStudy(studyUid)) }, 'Retry failed');
  // Send again: re-queues what was failed, conflicting or cancelled; a conflict is sent as an overwrite.
  const resendButton = h('button.btn', { type: 'button', onclick: () => act('Send again', async () => {
    const c = sync?.counts;
    const overwritten = c && c.conflict > 0 ? changedBy(await overwriteStudy(studyUid)) : 0;
    const retried = changedBy(await retryStudy(studyUid));
    return { changed: overwritten + retried };
  }) }, 'Send again');
  const deleteButton = h('button.btn.danger', { type: 'button', onclick: () => void removeLocal() }, 'Delete local copy');
  // Make a cloud study local: the server fetches it in the background; the location pill follows (live events).
  const retrieveButton = h('button.btn.primary', { type: 'button', hidden: true, onclick: () => void retrieve() }, 'Retrieve');
  const pinBox = h('input', { type: 'checkbox', 'aria-label': 'Keep local' });
  pinBox.addEventListener('change', () => void setPinned(pinBox.checked));
  const pinToggle = h('label.toggle', { title: 'Never evict this study to make room' }, pinBox, 'Keep local');
  const locationPill = h('span.where', { id: 'study-location' });
  let place: Pick<StudySyncDetail, 'location' | 'numInstances' | 'numLocalInstances' | 'pinned'> | undefined;
  actions.append(retrieveButton, pinToggle, retryButton, resendButton, deleteButton);

  async function retrieve(): Promise<void> {
    try {
      const answer = await retrieveStudy(studyUid);
      toast(answer.fetching ? 'Retrieving from the archive…' : 'All of it is here already');
      await loadSync();
    } catch (error) {
      toast(`Retrieve failed: ${(error as Error).message}`, 'error');
    }
  }

  async function setPinned(pinned: boolean): Promise<void> {
    try {
      await (pinned ? pinStudy(studyUid) : unpinStudy(studyUid));
      toast(pinned ? 'Kept local: never evicted' : 'May be evicted again when space runs out');
    } catch (error) {
      toast(`Keep local failed: ${(error as Error).message}`, 'error');
    }
    await loadSync();
  }

  async function act(label: string, action: () => Promise<ActionResult | { changed: number }>): Promise<void> {
    try {
      const result = await action();
      toast(`${label}: ${'changed' in result ? `${result.changed} instance(s) queued` : 'done'}`);
      await loadSync();
    } catch (error) {
      toast(`${label} failed: ${(error as Error).message}`, 'error');
    }
  }

  async function removeLocal(): Promise<void> {
    if (!confirm('Delete the local copy of this study? It has been delivered to every destination; the cloud copy stays.')) return;
    try {
      await deleteStudy(studyUid);
      toast('Local copy deleted');
      context.navigate('#/studies');
    } catch (error) {
      toast(error instanceof ApiError && error.status === 409 ? 'Not deleted: some images are still waiting for upload.' : `Delete failed: ${(error as Error).message}`, 'error');
    }
  }

  async function loadHead(): Promise<void> {
    const [ds] = await queryStudies({ StudyInstanceUID: studyUid }, 1);
    if (!ds) {
      head.replaceChildren(h('h1', 'Study not found'), h('p.muted', studyUid));
      return;
    }
    const row = toRow(ds);
    head.replaceChildren(
      h('a.back', { href: '#/studies' }, '← Studies'),
      h('div.study-title',
        h('h1', row.patientName || '(no name)'),
        h('div.facts',
          fact('Patient ID', row.patientId), fact('Born', dicomDate(row.birthDate)), fact('Sex', row.sex),
          fact('Study date', `${dicomDate(row.studyDate)} ${dicomTime(row.studyTime)}`), fact('Accession', row.accession),
          fact('Description', row.description), fact('Modalities', row.modalities.join(' ')),
          fact('Series / images', `${row.numSeries} / ${row.numInstances}`))),
      h('div.study-sync', locationPill, h('span.pill', { id: 'study-sync-pill' }), actions));
    renderSync();
  }

  function renderSync(): void {
    const pill = head.querySelector<HTMLElement>('#study-sync-pill');
    const label = syncLabel(sync, context.store.configured);
    if (pill) {
      pill.className = `pill ${label.label}`;
      pill.textContent = label.label === 'waiting' ? 'No destination configured' : label.text;
    }
    const c = sync?.counts;
    retryButton.disabled = !c || c.failed === 0;
    resendButton.disabled = !c || c.conflict + c.cancelled + c.failed === 0;
    // Only once every destination confirmed it may the local copy go.
    deleteButton.disabled = !sync || sync.total === 0 || c!.delivered < sync.total;
    deleteButton.title = deleteButton.disabled ? 'Available once every image has been delivered' : '';
    const where = locationLabel(place?.location, context.store.archive);
    locationPill.className = `where ${where.label}`;
    locationPill.dataset.location = place?.location ?? '';
    // Something is still only in the archive: how much of it is here (a retrieve's progress).
    const missing = place !== undefined && place.location !== null && place.numLocalInstances < place.numInstances;
    locationPill.textContent = missing && place ? `${where.text} · ${place.numLocalInstances}/${place.numInstances} here` : where.text;
    retrieveButton.hidden = !missing;
    retrieveButton.disabled = context.store.archive === 'offline';
    retrieveButton.title = retrieveButton.disabled ? 'The archive is offline' : 'Fetch every image of the study from the archive';
    pinBox.checked = place?.pinned ?? false;
    pinToggle.hidden = !place || place.location === null;
  }

  async function loadSeries(): Promise<void> {
    const series = (await querySeries(studyUid)).sort((a, b) => (num(a, TAG.SeriesNumber) ?? 0) - (num(b, TAG.SeriesNumber) ?? 0));
    seriesGrid.replaceChildren(...series.map(seriesCard));
    if (series.length === 0) seriesGrid.append(h('p.muted', 'No series.'));
  }

  function seriesCard(ds: DicomJson): HTMLElement {
    const seriesUid = str(ds, TAG.SeriesInstanceUID);
    const img = h('img.thumb', { alt: '', loading: 'lazy' });
    const card = h('a.series-card', { href: `#/viewer/${studyUid}/${seriesUid}`, dataset: { series: seriesUid } },
      h('div.thumb-box', img, h('span.badge', str(ds, TAG.Modality))),
      h('div.series-info',
        h('div.series-title', `#${str(ds, TAG.SeriesNumber) || '–'} ${str(ds, TAG.SeriesDescription) || '(no description)'}`),
        h('div.muted', [str(ds, TAG.BodyPartExamined), `${num(ds, TAG.NumberOfSeriesRelatedInstances) ?? 0} images`].filter(Boolean).join(' · '))));
    void imageUrl(`/studies/${studyUid}/series/${seriesUid}/thumbnail?viewport=128,128`)
      .catch(() => imageUrl(`/studies/${studyUid}/series/${seriesUid}/rendered`))
      .then((url) => {
        if (disposed) return URL.revokeObjectURL(url);
        objectUrls.push(url);
        img.src = url;
      })
      .catch(() => img.replaceWith(h('div.thumb.missing', 'no preview')));
    return card;
  }

  const PAGE = 1000;
  let instances: InstanceSync[] = [];
  let instancesTotal = 0;
  const moreButton = h('button.btn', { type: 'button', hidden: true, onclick: () => void loadMore() }, 'Show more');

  /** Re-reads the study's sync summary and the instance rows already shown (at least the first page). */
  async function loadSync(): Promise<void> {
    try {
      const detail = await getStudySyncDetail(studyUid, Math.max(PAGE, instances.length), 0);
      sync = progressOf(detail);
      place = detail;
      instances = detail.instances.items;
      instancesTotal = detail.instances.total;
    } catch {
      sync = undefined;
    }
    renderSync();
    renderInstances();
  }

  async function loadMore(): Promise<void> {
    try {
      const detail = await getStudySyncDetail(studyUid, PAGE, instances.length);
      instances = [...instances, ...detail.instances.items];
      instancesTotal = detail.instances.total;
    } catch (error) {
      toast(`Cannot read more images: ${(error as Error).message}`, 'error');
    }
    renderInstances();
  }

  /** An instance never queued, by where it is. */
  const PLACE_TEXT: Record<InstanceSync['location'], string> = { local: 'local only', both: 'local + cloud', cloud: 'cloud only' };
  const stateText = (d: Delivery): string => (d.destination === '*' ? 'waiting' : d.state);
  const pillClass = (state: string): string => (state === 'delivered' ? 'done' : state);

  function renderInstances(): void {
    instancesNote.textContent = !context.store.configured ? 'No destination is configured: images wait locally until one is added in Settings.' : '';
    instancesBody.replaceChildren(...instances.map((row) => {
      const deliveries = row.destinations;
      // The row's own state: the worst over its destinations; where it is when it was never queued (one fetched
      // from the archive is never queued, and is in the cloud by definition).
      const worst = deliveries.map(stateText).sort((a, b) => STATE_RANK.indexOf(a) - STATE_RANK.indexOf(b))[0] ?? PLACE_TEXT[row.location];
      const lines = (render: (d: Delivery) => Node | string) => deliveries.length === 0 ? ['–'] : deliveries.map((d) => h('div', render(d)));
      return h('tr', { dataset: { sop: row.sopInstanceUid, state: worst } },
        h('td', row.instanceNumber === null ? '' : String(row.instanceNumber)),
        h('td.mono', row.sopInstanceUid),
        h('td', ...lines((d) => (d.destination === '*' ? 'no destination yet' : d.destination))),
        h('td', ...(deliveries.length === 0
          ? [h('span.where', { class: row.location, dataset: { location: row.location } }, PLACE_TEXT[row.location])]
          : deliveries.map((d) => h('div', h('span.pill', { class: pillClass(stateText(d)), dataset: { destination: d.destination } }, stateText(d)))))),
        h('td', ...lines((d) => String(d.attempts))),
        h('td.reason', deliveries.map((d) => d.lastError ?? '').filter(Boolean).join('; ')));
    }));
    moreButton.hidden = instances.length >= instancesTotal;
    if (instances.length < instancesTotal) {
      instancesNote.textContent = `Showing ${instances.length} of ${instancesTotal} images (failed ones first).`;
      moreButton.textContent = `Show ${Math.min(PAGE, instancesTotal - instances.length)} more`;
    }
  }

  const element = h('section.view.study',
    head,
    h('h2', 'Series'),
    seriesGrid,
    h('h2', 'Images and their upload state'),
    instancesNote,
    h('div.table-wrap', h('table.grid', h('thead', h('tr', ...['#', 'SOP Instance UID', 'Destination', 'State', 'Attempts', 'Last error'].map((t) => h('th', t)))), instancesBody)),
    moreButton);

  void loadHead().then(loadSync).catch((error) => head.replaceChildren(h('a.back', { href: '#/studies' }, '← Studies'), h('p.notice', `Cannot read the study: ${(error as Error).message}`)));
  void loadSeries().catch(() => seriesGrid.replaceChildren(h('p.muted', 'Cannot read the series.')));

  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    element,
    onEvent: (event) => {
      if (!('studyUid' in event.data) || event.data.studyUid !== studyUid) return;
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (event.type === 'study-updated') void loadHead().then(loadSeries);
        void loadSync();
      }, 300);
    },
    dispose: () => {
      disposed = true;
      clearTimeout(timer);
      for (const url of objectUrls) URL.revokeObjectURL(url);
    },
  };
}

/** Worst first: the state a row with several destinations shows. */
const STATE_RANK = ['failed', 'conflict', 'sending', 'pending', 'waiting', 'cancelled', 'delivered'];

function fact(label: string, value: string): HTMLElement {
  return h('div.fact', h('span.fact-label', label), h('span.fact-value', value || '–'));
}
