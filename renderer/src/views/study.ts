import type { AppContext, View } from '../main';
import {
  ApiError, deleteStudy, getStudiesSync, getStudyInstancesSync, imageUrl, queryStudies, querySeries, request, retry, sendAgain,
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

  const retryButton = h('button.btn', { type: 'button', onclick: () => act('Retry', () => retry({ studyUid })) }, 'Retry failed');
  const resendButton = h('button.btn', { type: 'button', onclick: () => act('Send again', () => sendAgain({ studyUid })) }, 'Send again');
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
      h('div.study-sync', h('span.pill#study-sync-pill'), actions));
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
    retryButton.disabled = !c || c.failed + c.conflict + c.cancelled === 0;
    resendButton.disabled = !context.store.configured;
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

  async function loadSync(): Promise<void> {
    try {
      sync = (await getStudiesSync([studyUid])).get(studyUid);
    } catch {
      sync = undefined;
    }
    renderSync();
    await loadInstances();
  }

  async function loadInstances(): Promise<void> {
    let rows: InstanceSync[] = [];
    let numbers = new Map<string, { number: string; series: string }>();
    try {
      const response = await request(`/dicom-web/studies/${studyUid}/instances?includefield=00200013,0020000E&limit=100000`, { headers: { Accept: 'application/dicom+json' } });
      const text = response.status === 204 ? '' : await response.text();
      const instances = (text ? JSON.parse(text) : []) as DicomJson[];
      numbers = new Map(instances.map((ds) => [str(ds, TAG.SOPInstanceUID), { number: str(ds, TAG.InstanceNumber), series: str(ds, TAG.SeriesInstanceUID) }]));
      rows = await getStudyInstancesSync(studyUid).catch(() => []);
    } catch {
      /* shown as empty below */
    }
    if (rows.length === 0) {
      rows = [...numbers.keys()].map((sop) => ({ sopInstanceUid: sop, destination: '–', state: 'pending' as const }));
      instancesNote.textContent = context.store.configured ? 'Not queued for any destination.' : 'No destination is configured: images wait locally until one is added in Settings.';
    } else {
      instancesNote.textContent = '';
    }
    rows.sort((a, b) => Number(numbers.get(a.sopInstanceUid)?.number ?? 0) - Number(numbers.get(b.sopInstanceUid)?.number ?? 0));
    const shown = rows.slice(0, 1000);
    instancesBody.replaceChildren(...shown.map((r) => h('tr', { dataset: { sop: r.sopInstanceUid, state: r.state } },
      h('td', numbers.get(r.sopInstanceUid)?.number ?? ''),
      h('td.mono', r.sopInstanceUid),
      h('td', r.destination),
      h('td', h('span.pill', { class: r.destination === '–' ? 'waiting' : r.state === 'delivered' ? 'done' : r.state }, r.destination === '–' ? 'local only' : r.state)),
      h('td', r.attempts !== undefined ? String(r.attempts) : ''),
      h('td.reason', r.lastError ?? ''))));
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
