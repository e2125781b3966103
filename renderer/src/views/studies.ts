import type { AppContext, View } from '../view';
import type { ArchiveState } from '../study-store';
import { h } from '../dom';
import { bytes, dicomDate, dicomTime, toDicomDate } from '../format';
import { filterStudies, locationLabel, sortStudies, syncLabel, type SortKey, type StudyFilter, type StudyRow } from '../study-store';
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
  { key: 'location', label: 'Location', className: 'c-loc' },
  { key: 'sync', label: 'Cloud sync', className: 'c-sync' },
];

/** Positions in displayCells(): one per column, then the sync pill's class, the bar's width, the UID and the location badge's class. */
const LOCATION = COLUMNS.length - 2;
const SYNC = COLUMNS.length - 1;
const SYNC_CLASS = COLUMNS.length;
const SYNC_WIDTH = COLUMNS.length + 1;
const UID = COLUMNS.length + 2;
const LOCATION_CLASS = COLUMNS.length + 3;

interface CachedCells { cells: string[]; sync: StudyRow['sync']; sizeBytes: number | undefined; configured: boolean; location: string }
/**
 * The display strings of a study, formatted once per data change rather than on every scroll frame.
 * The store replaces a row object when its study changes and updates sync and size in place, so those
 * two (and whether a destination is configured) are checked.
 */
const cellCache = new WeakMap<StudyRow, CachedCells>();

function displayCells(study: StudyRow, configured: boolean, archive: ArchiveState): string[] {
  const cached = cellCache.get(study);
  const where = `${study.location}|${study.numLocalInstances}|${archive}`;
  if (cached && cached.sync === study.sync && cached.sizeBytes === study.sizeBytes && cached.configured === configured && cached.location === where) return cached.cells;
  const sync = syncLabel(study.sync, configured);
  const location = locationLabel(study.location, archive);
  const cells = [
    study.patientName || '(no name)',
    study.patientId,
    dicomDate(study.birthDate),
    `${dicomDate(study.studyDate)} ${dicomTime(study.studyTime)}`,
    study.modalities.join(' '),
    study.description,
    study.accession,
    String(study.numSeries),
    String(study.numInstances),
    study.sizeBytes !== undefined ? bytes(study.sizeBytes) : '',
    location.text,
    sync.text,
    `pill ${sync.label}`,
    `${Math.round(sync.progress * 100)}%`,
    study.uid,
    `where ${location.label}`,
  ];
  cellCache.set(study, { cells, sync: study.sync, sizeBytes: study.sizeBytes, configured, location: where });
  return cells;
}

const state: { filter: StudyFilter; sort: SortKey; descending: boolean; range: string } = {
  filter: { text: '', from: '', to: '', modality: '', sync: '' },
  sort: 'studyDate',
  descending: true,
  range: 'all',
};

const SCROLL_QUIET_MS = 150;
const MAX_DEFER_MS = 3000;

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
  const includeCloud = h('input', { type: 'checkbox', 'aria-label': 'Include cloud archive' });
  includeCloud.checked = store.includeCloud;
  includeCloud.addEventListener('change', () => {
    store.includeCloud = includeCloud.checked;
    localStorage.setItem('dicom-edge-include-cloud', includeCloud.checked ? 'true' : 'false');
    void store.load();
  });
  const cloudToggle = h('label.toggle', { title: 'Search the clinic archive too (federated QIDO-RS); off: only what this appliance knows' },
    includeCloud, 'Include cloud archive');
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
      sync.previousElementSibling!.append(h('span.where'));
      return row;
    },
    renderRow: (row, study) => {
      const cells = displayCells(study, store.configured, store.archive);
      const shown = written.get(row) ?? [];
      written.set(row, cells);
      if (shown === cells) return;
      const el = row.children as HTMLCollectionOf<HTMLElement>;
      if (shown[UID] !== cells[UID]) {
        (row as HTMLAnchorElement).href = `#/study/${cells[UID]}`;
        row.dataset.uid = cells[UID];
      }
      for (let c = 0; c < LOCATION; c++) if (shown[c] !== cells[c]) el[c]!.textContent = cells[c]!;
      const where = el[LOCATION]!.firstElementChild as HTMLElement;
      if (shown[LOCATION] !== cells[LOCATION]) where.textContent = cells[LOCATION]!;
      if (shown[LOCATION_CLASS] !== cells[LOCATION_CLASS]) {
        where.className = cells[LOCATION_CLASS]!;
        row.dataset.location = cells[LOCATION_CLASS]!.slice('where '.length);
      }
      const pill = el[SYNC]!.firstElementChild as HTMLElement;
      const bar = pill.nextElementSibling as HTMLElement;
      if (shown[SYNC_CLASS] !== cells[SYNC_CLASS]) {
        pill.className = cells[SYNC_CLASS]!;
        bar.hidden = cells[SYNC_CLASS] === 'pill none' || cells[SYNC_CLASS] === 'pill waiting';
      }
      if (shown[SYNC] !== cells[SYNC]) pill.textContent = cells[SYNC]!;
      if (shown[SYNC_WIDTH] !== cells[SYNC_WIDTH]) (bar.firstElementChild as HTMLElement).style.width = cells[SYNC_WIDTH]!;
    },
  });
  /** The cells each pooled row shows now, so a refill writes only the text that differs. */
  const written = new WeakMap<HTMLElement, string[]>();

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
      cloudToggle,
      count),
    notice,
    h('div.table', { role: 'table', 'aria-label': 'Studies' }, header, list.element, empty));

  // Live changes (SSE, sync polls) re-filter and re-sort 10,000 rows: never in the middle of a scroll.
  // They wait for an idle moment after the scrolling stops, or at most MAX_DEFER_MS.
  let deferredSince = 0;
  let deferred = 0;
  const runDeferred = (): void => {
    deferred = 0;
    if (list.scrolledWithin(SCROLL_QUIET_MS) && performance.now() - deferredSince < MAX_DEFER_MS) {
      deferred = requestIdleCallback(runDeferred, { timeout: SCROLL_QUIET_MS * 2 });
      return;
    }
    update();
  };
  const onStoreChanged = (): void => {
    if (deferred) return;
    if (!list.scrolledWithin(SCROLL_QUIET_MS)) {
      update();
      return;
    }
    deferredSince = performance.now();
    deferred = requestIdleCallback(runDeferred, { timeout: SCROLL_QUIET_MS * 2 });
  };
  const unsubscribe = store.subscribe(onStoreChanged);
  setRange(state.range);
  requestAnimationFrame(() => search.focus());
  return {
    element,
    dispose: () => {
      unsubscribe();
      if (deferred) cancelIdleCallback(deferred);
    },
  };
}
