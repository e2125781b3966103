import type { AppContext, View } from '../main';
import {
  ApiError, deleteStudy, getStudySyncDetail, imageUrl, overwriteStudy, queryStudies, querySeries, request, retryStudy,
  type DicomJson, type InstanceSync, type StudySync,
} from '../api';
import { h, toast } from '../dom';
import { TAG, bytes, dicomDate, dicomTime, num, str } from '../format';
import { syncLabel, toRow } from '../study-store';

export function studyView(context: AppContext, studyUid: string): View {
  const head = h('header.study-head');
  const actions = h('div.actions');
  const seriesGrid = h('div.series-grid');
  const instancesBody = h('tbody');
  const instancesNote = h('p.muted');
  const objectUrls: string[] = [];
  let sync: StudySync | undefined;
  let disposed = false;

  const retryButton = h('button.btn', { type: 'button', onclick: () => act('Retry', () => retryStudy(studyUid)) }, 'Retry failed');
  // Send again: re-queues what was failed, conflicting or cancelled; a conflict is sent as an overwrite.
  const resendButton = h('button.btn', { type: 'button', onclick: () => act('Send again', async () => {
    const c = sync?.counts;
    const overwritten = c && c.conflict > 0 ? (await overwriteStudy(studyUid)).changed ?? 0 : 0;
    const retried = (await retryStudy(studyUid)).changed ?? 0;
    return { changed: overwritten + retried };
  }) }, 'Send again');
  const deleteButton = h('button.btn.danger', { type: 'button', onclick: () => void removeLocal() }, 'Delete local copy');
  actions.append(retryButton, resendButton, deleteButton);

  async function act(label: string, action: () => Promise<unknown>): Promise<void> {
    try {
      const result = (await action()) as { changed?: number } | undefined;
      toast(`${label}: ${typeof result?.changed === 'number' ? `${result.changed} instance(s) queued` : 'done'}`);
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
      h('div.study-sync', h('span.pill', { id: 'study-sync-pill' }), actions));
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

  let problems: InstanceSync[] = [];

  async function loadSync(): Promise<void> {
    try {
      const detail = await getStudySyncDetail(studyUid);
      sync = detail.sync;
      problems = detail.problems;
    } catch {
      sync = undefined;
      problems = [];
    }
    renderSync();
    await loadInstances();
  }

  /** The state shown for an instance: its own when it failed or conflicts, else what the study's counts imply. */
  function instanceState(sop: string): { state: string; destination: string; attempts: string; reason: string } {
    const own = problems.filter((p) => p.sopInstanceUid === sop);
    if (own.length > 0) {
      return { state: own[0]!.state, destination: own.map((p) => p.destination).join(', '), attempts: String(own[0]!.attempts ?? ''), reason: own.map((p) => p.lastError ?? '').join('; ') };
    }
    if (!sync || sync.total === 0) return { state: context.store.configured ? 'local only' : 'waiting', destination: '–', attempts: '', reason: '' };
    const c = sync.counts;
    const state = c.delivered + c.failed + c.conflict >= sync.total ? 'delivered' : c.sending > 0 ? 'sending' : 'pending';
    return { state, destination: 'all', attempts: '', reason: '' };
  }

  async function loadInstances(): Promise<void> {
    let instances: DicomJson[] = [];
    try {
      const response = await request(`/dicom-web/studies/${studyUid}/instances?includefield=00200013,0020000E,00280008&limit=100000`, { headers: { Accept: 'application/dicom+json' } });
      const text = response.status === 204 ? '' : await response.text();
      instances = (text ? JSON.parse(text) : []) as DicomJson[];
    } catch {
      /* shown as empty below */
    }
    instances.sort((a, b) => (num(a, TAG.InstanceNumber) ?? 0) - (num(b, TAG.InstanceNumber) ?? 0));
    // Problems first: they are what a technician has to act on.
    const rows = instances.map((ds) => ({ ds, sop: str(ds, TAG.SOPInstanceUID), ...instanceState(str(ds, TAG.SOPInstanceUID)) }))
      .sort((a, b) => Number(b.state === 'failed' || b.state === 'conflict') - Number(a.state === 'failed' || a.state === 'conflict'));
    instancesNote.textContent = !context.store.configured ? 'No destination is configured: images wait locally until one is added in Settings.' : '';
    const shown = rows.slice(0, 1000);
    instancesBody.replaceChildren(...shown.map((r) => h('tr', { dataset: { sop: r.sop, state: r.state } },
      h('td', str(r.ds, TAG.InstanceNumber)),
      h('td.mono', r.sop),
      h('td', r.destination),
      h('td', h('span.pill', { class: r.state === 'delivered' ? 'done' : r.state === 'local only' ? 'waiting' : r.state }, r.state)),
      h('td', r.attempts),
      h('td.reason', r.reason))));
    if (rows.length > shown.length) instancesNote.textContent = `Showing the first ${shown.length} of ${rows.length} instances.`;
  }

  const element = h('section.view.study',
    head,
    h('h2', 'Series'),
    seriesGrid,
    h('h2', 'Images and their upload state'),
    instancesNote,
    h('div.table-wrap', h('table.grid', h('thead', h('tr', ...['#', 'SOP Instance UID', 'Destination', 'State', 'Attempts', 'Last error'].map((t) => h('th', t)))), instancesBody)));

  void loadHead().then(loadSync).catch((error) => head.replaceChildren(h('a.back', { href: '#/studies' }, '← Studies'), h('p.notice', `Cannot read the study: ${(error as Error).message}`)));
  void loadSeries().catch(() => seriesGrid.replaceChildren(h('p.muted', 'Cannot read the series.')));

  let timer: ReturnType<typeof setTimeout> | undefined;
  return {
    element,
    onEvent: (event) => {
      if (event.data.studyUid !== studyUid) return;
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

function fact(label: string, value: string): HTMLElement {
  return h('div.fact', h('span.fact-label', label), h('span.fact-value', value || '–'));
}
