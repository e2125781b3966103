import type { AppContext, View } from '../main';
import { h } from '../dom';
import { bytes, dicomDate, dicomTime, toDicomDate } from '../format';
import { filterStudies, sortStudies, syncLabel, type SortKey, type StudyFilter, type StudyRow } from '../study-store';
import { VirtualList } from '../virtual-list';

const COLUMNS: { key: SortKey; label: string; className: string }[] = [
  { key: 'patientName', label: 'Patient', className: 'c-name' },
  { key: 'patientId', label: 'Patient ID', className: 'c-id' },
  { key: 'birthDate', label: 'Born', className: 'c-birth' },
  { key: 'studyDate', label: 'Study date', className: 'c-date' },
  { key: 'modalities', label: 'Mod.', className: 'c-mod' },
  { key: 'description', label: 'Description', className: 'c-desc' },
  { key: 'accession', label: 'Accession', className: 'c-acc' },
  { key: 'numSeries', label: 'Ser.', className: 'c-num' },
  { key: 'numInstances', label: 'Img.', className: 'c-num' },
  { key: 'sizeBytes', label: 'Size', className: 'c-size' },
  { key: 'sync', label: 'Cloud sync', className: 'c-sync' },
];

const state: { filter: StudyFilter; sort: SortKey; descending: boolean; range: string } = {
  filter: { text: '', from: '', to: '', modality: '', sync: '' },
  sort: 'studyDate',
  descending: true,
  range: 'all',
};

export function studiesView(context: AppContext): View {
  const { store } = context;
  const search = h('input.search', { type: 'search', placeholder: 'Search name, patient ID or accession', value: state.filter.text, 'aria-label': 'Search' });
  const from = h('input.date', { type: 'date', 'aria-label': 'From date' });
  const to = h('input.date', { type: 'date', 'aria-label': 'To date' });
  const modality = h('select.select', { 'aria-label': 'Modality' }, h('option', { value: '' }, 'All modalities'));
  const syncFilter = h('select.select', { 'aria-label': 'Sync state' },
    ...[['', 'Any sync state'], ['pending', 'Pending'], ['uploading', 'Uploading'], ['done', 'Done'], ['failed', 'Failed'], ['conflict', 'Conflict'], ['waiting', 'No destination']]
      .map(([v, l]) => h('option', { value: v }, l)));
  syncFilter.value = state.filter.sync;
  const count = h('span.count');
  const notice = h('div.notice', { hidden: true });
  const rangeButtons = (['all', 'today', '7d', 'range'] as const).map((range) =>
    h('button.seg', { type: 'button', dataset: { range }, onclick: () => setRange(range) },
      { all: 'All dates', today: 'Today', '7d': 'Last 7 days', range: 'Range…' }[range]));
  const rangeInputs = h('span.range-inputs', from, h('span.muted', '–'), to);

  function setRange(range: string): void {
    state.range = range;
    const today = new Date();
    if (range === 'all') [state.filter.from, state.filter.to] = ['', ''];
    if (range === 'today') [state.filter.from, state.filter.to] = [toDicomDate(today), toDicomDate(today)];
    if (range === '7d') [state.filter.from, state.filter.to] = [toDicomDate(new Date(today.getTime() - 6 * 86400_000)), toDicomDate(today)];
    if (range === 'range') {
      state.filter.from = from.value.replaceAll('-', '');
      state.filter.to = to.value.replaceAll('-', '');
    }
    for (const b of rangeButtons) b.classList.toggle('on', b.dataset.range === range);
    rangeInputs.hidden = range !== 'range';
    update();
  }

  const header = h('div.row.head', { role: 'row' },
    ...COLUMNS.map((col) => h('button.cell', {
      class: col.className, type: 'button', dataset: { sort: col.key }, role: 'columnheader',
      onclick: () => {
        state.descending = state.sort === col.key ? !state.descending : col.key === 'studyDate' || col.key === 'sizeBytes';
        state.sort = col.key;
        update();
      },
    }, col.label, h('span.sort-mark'))));

  const list = new VirtualList<StudyRow>({
    rowHeight: 40,
    createRow: () => {
      const row = h('a.row.study', { role: 'row' });
      for (const col of COLUMNS) row.append(h('span.cell', { class: col.className }));
      const sync = row.lastElementChild!;
      sync.append(h('span.pill'), h('span.bar', h('span.fill')));
      return row;
    },
    renderRow: (row, study) => {
      const cells = row.children as HTMLCollectionOf<HTMLElement>;
      (row as HTMLAnchorElement).href = `#/study/${study.uid}`;
      row.dataset.uid = study.uid;
      cells[0]!.textContent = study.patientName || '(no name)';
      cells[1]!.textContent = study.patientId;
      cells[2]!.textContent = dicomDate(study.birthDate);
      cells[3]!.textContent = `${dicomDate(study.studyDate)} ${dicomTime(study.studyTime)}`;
      cells[4]!.textContent = study.modalities.join(' ');
      cells[5]!.textContent = study.description;
      cells[6]!.textContent = study.accession;
      cells[7]!.textContent = String(study.numSeries);
      cells[8]!.textContent = String(study.numInstances);
      cells[9]!.textContent = study.sizeBytes !== undefined ? bytes(study.sizeBytes) : '';
      const sync = syncLabel(study.sync, store.configured);
      const pill = cells[10]!.firstElementChild as HTMLElement;
      pill.className = `pill ${sync.label}`;
      pill.textContent = sync.text;
      const bar = pill.nextElementSibling as HTMLElement;
      bar.hidden = sync.label === 'none' || sync.label === 'waiting';
      (bar.firstElementChild as HTMLElement).style.width = `${Math.round(sync.progress * 100)}%`;
    },
  });

  const empty = h('div.empty', { hidden: true });

  function update(): void {
    state.filter.text = search.value.trim();
    state.filter.modality = modality.value;
    state.filter.sync = syncFilter.value as StudyFilter['sync'];
    const all = [...store.rows.values()];
    const modalities = [...new Set(all.flatMap((r) => r.modalities))].sort();
    if (modalities.join() !== [...modality.options].slice(1).map((o) => o.value).join()) {
      const selected = modality.value;
      modality.replaceChildren(h('option', { value: '' }, 'All modalities'), ...modalities.map((m) => h('option', { value: m }, m)));
      modality.value = selected;
    }
    const rows = sortStudies(filterStudies(all, state.filter, store.configured), state.sort, state.descending, store.configured);
    list.setItems(rows);
    count.textContent = `${rows.length.toLocaleString()} of ${all.length.toLocaleString()} studies`;
    for (const cell of header.children as HTMLCollectionOf<HTMLElement>) {
      cell.classList.toggle('sorted', cell.dataset.sort === state.sort);
      cell.classList.toggle('desc', cell.dataset.sort === state.sort && state.descending);
    }
    notice.hidden = !store.error;
    notice.textContent = store.error ? `Cannot read the study list: ${store.error}` : '';
    empty.hidden = rows.length > 0 || !store.loaded;
    empty.textContent = all.length === 0
      ? 'No studies yet. Send images from a modality to this appliance and they appear here as they arrive.'
      : 'No study matches the filters.';
    document.body.dataset.studiesLoaded = store.loaded ? 'true' : 'false';
  }

  let searchTimer: ReturnType<typeof setTimeout> | undefined;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(update, 120);
  });
  modality.addEventListener('change', update);
  syncFilter.addEventListener('change', update);
  from.addEventListener('change', () => setRange('range'));
  to.addEventListener('change', () => setRange('range'));

  const element = h('section.view.studies',
    h('header.toolbar',
      h('h1', 'Studies'),
      search,
      h('div.segmented', ...rangeButtons),
      rangeInputs,
      modality,
      syncFilter,
      count),
    notice,
    h('div.table', { role: 'table', 'aria-label': 'Studies' }, header, list.element, empty));

  const unsubscribe = store.subscribe(update);
  setRange(state.range);
  requestAnimationFrame(() => search.focus());
  return { element, dispose: unsubscribe };
}
