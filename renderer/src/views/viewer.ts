import type { AppContext, View } from '../view';
import { TAG, type DicomJson } from '../../../main/core/contract/dicom-json';
import { queryInstances, queryStudies, request, seriesMetadata } from '../api';
import { h } from '../dom';
import { dicomDate, num, personName, str, transferSyntaxName } from '../format';
import { cornerstone, cornerstoneTools, frameImageId, registerMetadata, setupCornerstone } from '../viewer/cornerstone';

/** CT window presets: [label, width, centre]. */
const CT_PRESETS: [string, number, number][] = [
  ['Soft tissue', 400, 40], ['Lung', 1500, -600], ['Bone', 2000, 300], ['Brain', 80, 40], ['Abdomen', 350, 50], ['Liver', 150, 30], ['Mediastinum', 350, 50],
];

/** Transfer syntaxes the image loader decodes; anything else gets a clear message instead of a blank canvas. */
const DECODABLE = new Set([
  '1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203',
]);

interface Slice {
  imageId: string;
  sopUid: string;
  frame: number;
  frames: number;
  instanceNumber: number;
}

type MouseTool = 'Wwwc' | 'Pan' | 'Zoom';

export function viewerView(_context: AppContext, studyUid: string, seriesUid: string): View {
  setupCornerstone();
  const viewport = h('div.viewport', { tabindex: 0, 'aria-label': 'Image' });
  const message = h('div.viewer-message', { hidden: true, role: 'alert' });
  const overlay = {
    tl: h('div.ov.tl'), tr: h('div.ov.tr'), bl: h('div.ov.bl'), br: h('div.ov.br'),
  };
  const slider = h('input.slice-slider', { type: 'range', min: '0', max: '0', value: '0', 'aria-label': 'Slice' });
  const sliceText = h('span.slice-text', '–');
  const prefetchText = h('span.muted.prefetch');
  const cineButton = h('button.tool', { type: 'button', title: 'Cine (space)', onclick: () => toggleCine() }, '▶ Cine');
  const fpsInput = h('input.fps', { type: 'number', min: '1', max: '60', value: '15', title: 'Frames per second', 'aria-label': 'Cine frames per second' });
  const invertButton = h('button.tool', { type: 'button', title: 'Invert (i)', onclick: () => invert() }, 'Invert');
  const toolButtons = new Map<MouseTool, HTMLButtonElement>();
  const toolButton = (tool: MouseTool, label: string) => {
    const b = h('button.tool', { type: 'button', dataset: { tool }, onclick: () => selectTool(tool) }, label);
    toolButtons.set(tool, b);
    return b;
  };
  const presetSelect = h('select.select', { 'aria-label': 'Window preset' },
    h('option', { value: '' }, 'W/L preset…'), h('option', { value: 'default' }, 'Image default'),
    ...CT_PRESETS.map(([label, w, c]) => h('option', { value: `${w},${c}` }, `${label} (${w}/${c})`)));
  presetSelect.addEventListener('change', () => {
    applyPreset(presetSelect.value);
    presetSelect.value = '';
    viewport.focus();
  });

  const element = h('section.view.viewer',
    h('header.viewer-bar',
      h('a.back', { href: `#/study/${studyUid}` }, '← Study'),
      h('div.tool-group', toolButton('Wwwc', 'Window/level'), toolButton('Pan', 'Pan'), toolButton('Zoom', 'Zoom')),
      presetSelect,
      h('div.tool-group', invertButton, h('button.tool', { type: 'button', title: 'Reset (r)', onclick: () => reset() }, 'Reset')),
      h('div.tool-group', cineButton, fpsInput, h('span.muted', 'fps')),
      prefetchText),
    h('div.viewer-stage', viewport, overlay.tl, overlay.tr, overlay.bl, overlay.br, message),
    h('footer.viewer-foot', slider, sliceText));

  let slices: Slice[] = [];
  let index = 0;
  let disposed = false;
  let shownIndex = -1;
  let loadToken = 0;
  let cineTimer: ReturnType<typeof setInterval> | undefined;
  let studyInfo: DicomJson | undefined;
  let seriesInfo: DicomJson | undefined;
  const metadataBySop = new Map<string, DicomJson>();

  cornerstone.enable(viewport, { renderer: 'canvas' });
  const tools = cornerstoneTools as unknown as Record<string, unknown>;
  cornerstoneTools.addToolForElement(viewport, tools.WwwcTool);
  cornerstoneTools.addToolForElement(viewport, tools.PanTool);
  cornerstoneTools.addToolForElement(viewport, tools.ZoomTool, { configuration: { minScale: 0.1, maxScale: 20, preventZoomOutsideImage: false } });
  selectTool('Wwwc');
  viewport.addEventListener('contextmenu', (e) => e.preventDefault());

  function selectTool(tool: MouseTool): void {
    for (const [name, button] of toolButtons) button.classList.toggle('on', name === tool);
    // The left button drives the chosen tool; the middle button always pans and the right one always zooms.
    for (const name of ['Wwwc', 'Pan', 'Zoom'] as MouseTool[]) {
      const mask = (name === tool ? 1 : 0) | (name === 'Pan' ? 4 : name === 'Zoom' ? 2 : 0);
      if (mask === 0) cornerstoneTools.setToolPassiveForElement(viewport, name);
      else cornerstoneTools.setToolActiveForElement(viewport, name, { mouseButtonMask: mask });
    }
  }

  function showMessage(text: string): void {
    message.hidden = !text;
    message.textContent = text;
    element.dataset.error = text ? 'true' : 'false';
  }

  async function show(i: number): Promise<void> {
    if (slices.length === 0) return;
    index = Math.max(0, Math.min(slices.length - 1, i));
    slider.value = String(index);
    updateSliceText();
    const token = ++loadToken;
    const slice = slices[index]!;
    try {
      await ensureMetadata(slice);
      const image = await cornerstone.loadAndCacheImage(slice.imageId);
      if (disposed || token !== loadToken) return;
      const first = shownIndex < 0;
      // The canvas was created before the view was in the page: size it to the stage now.
      if (first) cornerstone.resize(viewport, false);
      cornerstone.displayImage(viewport, image);
      if (first) cornerstone.fitToWindow(viewport);
      shownIndex = index;
      showMessage('');
      element.dataset.index = String(index);
    } catch (error) {
      if (disposed || token !== loadToken) return;
      showMessage(decodeProblem(slice, error));
    }
  }

  function decodeProblem(slice: Slice, error: unknown): string {
    const meta = metadataBySop.get(slice.sopUid);
    const ts = str(meta, TAG.TransferSyntaxUID) || str(meta, TAG.AvailableTransferSyntaxUID);
    if (ts && !DECODABLE.has(ts)) {
      return `This image cannot be shown: it is encoded as ${transferSyntaxName(ts)} (${ts}), which the viewer does not decode. The original is kept unchanged and is still uploaded.`;
    }
    const detail = error instanceof Error ? error.message : typeof error === 'object' && error && 'error' in error ? String((error as { error: unknown }).error) : String(error);
    return `This image cannot be shown${ts ? ` (${transferSyntaxName(ts)})` : ''}: ${detail || 'the decoder failed'}.`;
  }

  async function ensureMetadata(slice: Slice): Promise<void> {
    if (metadataBySop.has(slice.sopUid)) return;
    const response = await request(`/dicom-web/studies/${studyUid}/series/${seriesUid}/instances/${slice.sopUid}/metadata`, { headers: { Accept: 'application/dicom+json' } });
    const [meta] = (await response.json()) as DicomJson[];
    if (meta) addMetadata(meta);
  }

  function addMetadata(meta: DicomJson): void {
    const sop = str(meta, TAG.SOPInstanceUID);
    if (!sop || metadataBySop.has(sop)) return;
    metadataBySop.set(sop, meta);
    for (const slice of slices) if (slice.sopUid === sop) registerMetadata(slice.imageId, meta);
    seriesInfo ??= meta;
  }

  function updateSliceText(): void {
    const slice = slices[index];
    sliceText.textContent = slice ? `${index + 1} / ${slices.length}` : '–';
    element.dataset.count = String(slices.length);
  }

  function updateOverlay(): void {
    const vp = cornerstone.getViewport(viewport);
    const slice = slices[index];
    const meta = slice ? metadataBySop.get(slice.sopUid) : undefined;
    const src = studyInfo ?? meta;
    overlay.tl.replaceChildren(
      h('div.ov-strong', personName(str(src, TAG.PatientName)) || '(no name)'),
      h('div', `ID ${str(src, TAG.PatientID)}`),
      h('div', str(src, TAG.PatientBirthDate) ? `Born ${dicomDate(str(src, TAG.PatientBirthDate))}` : ''));
    overlay.tr.replaceChildren(
      h('div.ov-strong', str(src, TAG.StudyDescription) || 'Study'),
      h('div', dicomDate(str(src, TAG.StudyDate))),
      h('div', `Se ${str(seriesInfo, TAG.SeriesNumber)} ${str(seriesInfo, TAG.SeriesDescription)}`.trim()));
    const location = num(meta, TAG.SliceLocation);
    overlay.bl.replaceChildren(
      h('div.ov-strong', slice ? `Im ${index + 1} / ${slices.length}` : ''),
      h('div', slice && slice.frames > 1 ? `Frame ${slice.frame} / ${slice.frames}` : slice ? `Instance ${slice.instanceNumber}` : ''),
      h('div', location !== undefined ? `Loc ${location.toFixed(1)} mm` : ''));
    overlay.br.replaceChildren(
      h('div', vp ? `W ${Math.round(vp.voi.windowWidth)} L ${Math.round(vp.voi.windowCenter)}` : ''),
      h('div', vp ? `Zoom ${vp.scale.toFixed(2)}×` : ''),
      h('div', vp?.invert ? 'Inverted' : ''));
  }

  viewport.addEventListener('cornerstoneimagerendered', () => {
    updateOverlay();
    renderedFrames++;
  });
  let renderedFrames = 0;

  function applyPreset(value: string): void {
    const vp = cornerstone.getViewport(viewport);
    const enabled = cornerstone.getEnabledElement(viewport);
    if (!vp || !enabled.image) return;
    if (value === 'default') {
      const def = cornerstone.getDefaultViewportForImage(viewport, enabled.image);
      vp.voi = def.voi;
    } else if (value) {
      const [w, c] = value.split(',').map(Number);
      vp.voi = { windowWidth: w!, windowCenter: c! };
    }
    cornerstone.setViewport(viewport, vp);
  }

  function invert(): void {
    const vp = cornerstone.getViewport(viewport);
    if (!vp) return;
    vp.invert = !vp.invert;
    cornerstone.setViewport(viewport, vp);
    invertButton.classList.toggle('on', vp.invert);
  }

  function reset(): void {
    if (!cornerstone.getEnabledElement(viewport).image) return;
    cornerstone.reset(viewport);
    cornerstone.fitToWindow(viewport);
    invertButton.classList.remove('on');
  }

  function toggleCine(): void {
    if (cineTimer) {
      clearInterval(cineTimer);
      cineTimer = undefined;
      cineButton.classList.remove('on');
      cineButton.textContent = '▶ Cine';
      return;
    }
    const fps = Math.max(1, Math.min(60, Number(fpsInput.value) || 15));
    cineButton.classList.add('on');
    cineButton.textContent = '❚❚ Stop';
    cineTimer = setInterval(() => void show((index + 1) % slices.length), 1000 / fps);
  }

  // Scrolling: wheel, keys and the slider.
  viewport.addEventListener('wheel', (event) => {
    event.preventDefault();
    void show(index + Math.sign(event.deltaY));
  }, { passive: false });
  slider.addEventListener('input', () => void show(Number(slider.value)));
  const onKey = (event: KeyboardEvent): void => {
    const target = event.target;
    if (target instanceof Element && target.matches('input, select, textarea') && target !== slider) return;
    const step: Record<string, number> = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1, PageDown: 10, PageUp: -10 };
    if (event.key in step) void show(index + step[event.key]!);
    else if (event.key === 'Home') void show(0);
    else if (event.key === 'End') void show(slices.length - 1);
    else if (event.key === 'i') invert();
    else if (event.key === 'r') reset();
    else if (event.key === ' ') toggleCine();
    else return;
    event.preventDefault();
  };
  document.addEventListener('keydown', onKey);
  const resizeObserver = new ResizeObserver(() => {
    if (cornerstone.getEnabledElement(viewport).image) cornerstone.resize(viewport, true);
  });
  resizeObserver.observe(viewport);

  /** Loads every slice into the cache, nearest to the current one first, a few at a time. */
  async function prefetch(): Promise<void> {
    const order = slices.map((_, i) => i).sort((a, b) => Math.abs(a - index) - Math.abs(b - index));
    let done = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!disposed && next < order.length) {
        const slice = slices[order[next++]!]!;
        try {
          await ensureMetadata(slice);
          await cornerstone.loadAndCacheImage(slice.imageId);
        } catch {
          /* shown when the slice is displayed */
        }
        done++;
        if (done % 10 === 0 || done === slices.length) prefetchText.textContent = done === slices.length ? 'All slices loaded' : `Loading ${done} / ${slices.length}`;
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    if (!disposed) element.dataset.prefetched = 'true';
  }

  async function load(): Promise<void> {
    const [instances, study] = await Promise.all([queryInstances(studyUid, seriesUid), queryStudies({ StudyInstanceUID: studyUid }, 1)]);
    studyInfo = study[0];
    if (instances.length === 0) {
      showMessage('This series has no images.');
      return;
    }
    instances.sort((a, b) => (num(a, TAG.InstanceNumber) ?? 0) - (num(b, TAG.InstanceNumber) ?? 0));
    slices = instances.flatMap((ds) => {
      const sop = str(ds, TAG.SOPInstanceUID);
      const frames = Math.max(1, num(ds, TAG.NumberOfFrames) ?? 1);
      return Array.from({ length: frames }, (_, f) => ({
        imageId: frameImageId(studyUid, seriesUid, sop, f + 1), sopUid: sop, frame: f + 1, frames, instanceNumber: num(ds, TAG.InstanceNumber) ?? 0,
      }));
    });
    slider.max = String(slices.length - 1);
    updateSliceText();
    if (slices.length > 1 && slices.every((s) => s.sopUid === slices[0]!.sopUid)) {
      fpsInput.value = String(Math.round(num(metadataBySop.get(slices[0]!.sopUid), TAG.CineRate) ?? 15));
    }
    // The whole series' metadata in one request, while the first image loads from its own.
    const bulk = slices.length > 1 ? seriesMetadata(studyUid, seriesUid).then((list) => list.forEach(addMetadata)).catch(() => undefined) : Promise.resolve();
    await show(Math.floor(0));
    viewport.focus();
    await bulk;
    if (!disposed) void prefetch();
  }

  requestAnimationFrame(() => void load().catch((error) => showMessage(`Cannot open the series: ${(error as Error).message}`)));

  // For tests and the UI benchmark: how many frames were drawn.
  (element as HTMLElement & { renderedFrames?: () => number }).renderedFrames = () => renderedFrames;

  return {
    element,
    dispose: () => {
      disposed = true;
      if (cineTimer) clearInterval(cineTimer);
      document.removeEventListener('keydown', onKey);
      resizeObserver.disconnect();
      try {
        cornerstone.disable(viewport);
      } catch {
        /* already gone */
      }
    },
  };
}
