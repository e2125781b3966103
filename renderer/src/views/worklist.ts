import type { AppContext, View } from '../view';
import type { WorklistItem, WorklistItemInput } from '../../../main/core/contract/api/worklist';
import { cancelWorklistItem, editWorklistItem, getWorklist, scheduleWorklistItem } from '../api';
import { h, toast } from '../dom';
import { dicomDate, dicomTime, personName } from '../format';

/** Pill classes of the stylesheet for each item state. */
const STATE_PILL: Record<WorklistItem['state'], string> = {
  SCHEDULED: 'pending', 'IN PROGRESS': 'uploading', COMPLETED: 'done', DISCONTINUED: 'failed', CANCELED: 'cancelled',
};

type FieldName = Exclude<keyof WorklistItemInput, 'studyInstanceUid'>;

/** The Worklist screen: what modalities get by Modality Worklist C-FIND; technicians schedule, edit and cancel here. */
export function worklistView(_context: AppContext): View {
  const inputs = new Map<FieldName, HTMLInputElement | HTMLSelectElement>();
  const body = h('tbody');
  const empty = h('p.muted');
  const submit = h('button.btn.primary', { type: 'submit' }, 'Schedule');
  const stopEditing = h('button.btn', { type: 'button', hidden: true, onclick: () => editing(undefined) }, 'Stop editing');
  let editingId: number | undefined;
  let disposed = false;

  const input = (name: FieldName, label: string, type = 'text', extra: Record<string, unknown> = {}) => {
    const element = h('input.input', { type, name, id: `wl-${name}`, ...extra });
    inputs.set(name, element);
    return h('label.field', { htmlFor: element.id, dataset: { field: name } }, h('span.field-label', label), element);
  };
  const sex = h('select.select', { name: 'patientSex', id: 'wl-patientSex' },
    ...['', 'M', 'F', 'O'].map((value) => h('option', { value }, value || '–')));
  inputs.set('patientSex', sex);

  const form = h('form.panel.worklist-form', {
    onsubmit: (event: Event) => {
      event.preventDefault();
      void save();
    },
  },
  h('div.fields',
    input('patientName', 'Patient name (Family^Given)', 'text', { required: true }),
    input('patientId', 'Patient ID', 'text', { required: true }),
    input('patientBirthDate', 'Birth date', 'date'),
    h('label.field', { htmlFor: sex.id }, h('span.field-label', 'Sex'), sex),
    input('accessionNumber', 'Accession number'),
    input('requestedProcedureId', 'Requested procedure ID'),
    input('requestedProcedureDescription', 'Procedure'),
    input('modality', 'Modality', 'text', { required: true, placeholder: 'CT' }),
    input('scheduledStationAeTitle', 'Station AE title', 'text', { placeholder: 'any station' }),
    input('scheduledStartDate', 'Date', 'date', { required: true }),
    input('scheduledStartTime', 'Time', 'time'),
    input('scheduledProcedureStepDescription', 'Step description')),
  h('footer.form-actions', submit, stopEditing));

  /** The form as the API takes it: dates and times in DICOM form, empty fields left to their defaults. */
  function formValue(): WorklistItemInput {
    const value = (name: FieldName) => inputs.get(name)!.value.trim();
    const item: Record<string, string> = {};
    for (const name of inputs.keys()) {
      let text = value(name);
      if (name === 'patientBirthDate' || name === 'scheduledStartDate') text = text.replaceAll('-', '');
      if (name === 'scheduledStartTime') text = text.replaceAll(':', '');
      if (name === 'modality') text = text.toUpperCase();
      if (text !== '' || name === 'scheduledStartDate') item[name] = text;
    }
    return item as unknown as WorklistItemInput;
  }

  function editing(item: WorklistItem | undefined): void {
    editingId = item?.id;
    submit.textContent = item ? 'Save changes' : 'Schedule';
    stopEditing.hidden = !item;
    for (const [name, element] of inputs) {
      let value = item ? String(item[name] ?? '') : '';
      if (item && (name === 'patientBirthDate' || name === 'scheduledStartDate') && value.length === 8) value = `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6)}`;
      if (item && name === 'scheduledStartTime' && value.length >= 4) value = `${value.slice(0, 2)}:${value.slice(2, 4)}`;
      element.value = value;
    }
  }

  async function save(): Promise<void> {
    try {
      const item = editingId === undefined ? await scheduleWorklistItem(formValue()) : await editWorklistItem(editingId, formValue());
      toast(editingId === undefined ? `Scheduled ${personName(item.patientName)}` : `Saved ${personName(item.patientName)}`);
      editing(undefined);
      await refresh();
    } catch (error) {
      toast(`Not saved: ${(error as Error).message}`, 'error');
    }
  }

  async function cancel(item: WorklistItem): Promise<void> {
    try {
      await cancelWorklistItem(item.id);
      toast(`Cancelled ${personName(item.patientName)}`);
      if (editingId === item.id) editing(undefined);
      await refresh();
    } catch (error) {
      toast(`Not cancelled: ${(error as Error).message}`, 'error');
    }
  }

  function row(item: WorklistItem): HTMLElement {
    // Cloud items are the archive's worklist: they change there, not here.
    const scheduled = item.state === 'SCHEDULED' && item.source === 'local';
    return h('tr', { dataset: { id: String(item.id), state: item.state, accession: item.accessionNumber } },
      h('td', `${dicomDate(item.scheduledStartDate)}${item.scheduledStartTime ? ` ${dicomTime(item.scheduledStartTime)}` : ''}`),
      h('td', personName(item.patientName), h('div.muted', item.patientId)),
      h('td', item.accessionNumber || '–'),
      h('td', [item.modality, item.requestedProcedureDescription].filter(Boolean).join(' · ')),
      h('td', item.scheduledStationAeTitle || 'any'),
      h('td', h('span.pill', { class: STATE_PILL[item.state] }, item.state), item.source === 'cloud' ? h('div.muted', 'cloud worklist') : null),
      h('td', item.arrivedStudyUid ? h('a', { href: `#/study/${item.arrivedStudyUid}` }, 'images') : '–'),
      h('td.row-actions',
        scheduled ? h('button.btn.small', { type: 'button', onclick: () => editing(item) }, 'Edit') : null,
        scheduled ? h('button.btn.small', { type: 'button', onclick: () => void cancel(item) }, 'Cancel') : null));
  }

  async function refresh(): Promise<void> {
    try {
      const { items } = await getWorklist();
      if (disposed) return;
      empty.textContent = items.length === 0 ? 'Nothing scheduled. Items added here are offered to modalities by Modality Worklist.' : '';
      body.replaceChildren(...items.map(row));
    } catch (error) {
      empty.textContent = `Cannot read the worklist: ${(error as Error).message}`;
    }
  }

  const element = h('section.view.worklist',
    h('header.toolbar', h('h1', 'Worklist')),
    form,
    h('div.panel', h('h2', 'Scheduled procedures'), empty,
      h('div.table-wrap', h('table.grid.worklist-items',
        h('thead', h('tr', ...['When', 'Patient', 'Accession', 'Procedure', 'Station', 'State', 'Study', ''].map((t) => h('th', t)))), body))));

  void refresh();
  // Modalities move items on by MPPS; the list follows without a live event of its own.
  const poll = setInterval(() => void refresh(), 3000);
  return {
    element,
    dispose: () => {
      disposed = true;
      clearInterval(poll);
    },
  };
}
