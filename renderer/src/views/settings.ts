import type { AppContext, View } from '../view';
import { maskedSettingsSchema, type SettingsDraft } from '../../../main/core/contract/api/settings';
import { fieldProblems, type FieldProblem } from '../../../main/core/contract/settings-problems';
import { ApiError, deviceCodeStatus, echoPeer, getSettings, putSettings, startDeviceCode, testDestination } from '../api';
import { h, toast } from '../dom';

type Json = Record<string, any>;

const AUTH_KINDS: [string, string][] = [
  ['none', 'No authentication'],
  ['basic', 'User and password (basic)'],
  ['bearer', 'Static bearer token'],
  ['entra-client-secret', 'Microsoft Entra ID: client secret'],
  ['entra-client-certificate', 'Microsoft Entra ID: client certificate'],
  ['entra-device-code', 'Microsoft Entra ID: sign in with a device code'],
  ['managed-identity', 'Azure managed identity (Azure VM or Azure Arc)'],
];

const AUTH_FIELDS: Record<string, [string, string, string?][]> = {
  none: [],
  basic: [['user', 'User'], ['password', 'Password', 'password']],
  bearer: [['token', 'Token', 'password']],
  'entra-client-secret': [['tenantId', 'Tenant ID'], ['clientId', 'Client (application) ID'], ['clientSecret', 'Client secret', 'password'], ['scope', 'Scope'], ['authority', 'Authority URL (optional)']],
  'entra-client-certificate': [['tenantId', 'Tenant ID'], ['clientId', 'Client (application) ID'], ['certificateFile', 'Certificate file (PEM)'], ['privateKeyFile', 'Private key file (PEM)'], ['scope', 'Scope'], ['authority', 'Authority URL (optional)']],
  'entra-device-code': [['tenantId', 'Tenant ID'], ['clientId', 'Client (application) ID'], ['scope', 'Scope'], ['authority', 'Authority URL (optional)']],
  'managed-identity': [['clientId', 'User-assigned identity client ID (optional)'], ['scope', 'Scope']],
};

const GB = 1024 ** 3;

export function settingsView(_context: AppContext): View {
  let settings: Json = {};
  const form = h('form.settings-form', { novalidate: true });
  const status = h('span.save-status');
  const saveButton = h('button.btn.primary', { type: 'submit' }, 'Save settings');
  const element = h('section.view.settings',
    h('header.toolbar', h('h1', 'Settings'), h('span.grow'), status, saveButton),
    form);
  saveButton.setAttribute('form', 'settings-form');
  form.id = 'settings-form';
  const timers: ReturnType<typeof setInterval>[] = [];

  /** A labelled input bound to a dotted settings path; its error message sits right under it. */
  function field(label: string, path: string, input: HTMLInputElement | HTMLSelectElement, hint?: string): HTMLElement {
    input.dataset.path = path;
    input.id = `f-${path.replaceAll('.', '-')}`;
    return h('label.field', { htmlFor: input.id, dataset: { field: path } },
      h('span.field-label', label), input,
      hint ? h('span.field-hint', hint) : null,
      h('span.field-error', { dataset: { errorFor: path }, role: 'alert' }));
  }

  const text = (value: unknown, type = 'text', extra: Json = {}): HTMLInputElement => h('input.input', { type, value: value === undefined || value === null ? '' : String(value), ...extra });
  const check = (value: unknown): HTMLInputElement => h('input', { type: 'checkbox', checked: Boolean(value) });

  function render(): void {
    const s = settings;
    s.dimse ??= {};
    s.storage ??= {};
    s.peers ??= [];
    s.destinations ??= [];
    s.network ??= {};
    s.network.proxy ??= {};
    form.replaceChildren(
      section('This appliance', 'How modalities reach this appliance over DICOM.',
        h('div.fields',
          field('AE title', 'aeTitle', text(s.aeTitle), 'Up to 16 characters; modalities send to this name.'),
          field('DICOM port', 'dimse.port', text(s.dimse.port, 'number', { min: 1, max: 65535 })),
          field('Allowed calling AE titles', 'dimse.allowedCallingAes', text((s.dimse.allowedCallingAes ?? []).join(', ')), 'Comma-separated. Empty: any modality may send.'),
          h('label.check', { dataset: { path: 'dimse.acceptAnyCalledAe' } }, check(s.dimse.acceptAnyCalledAe), ' Accept any called AE title'))),
      section('Peers', 'DICOM nodes this appliance knows (C-MOVE destinations, workstations).', peersEditor()),
      section('Cloud destinations', 'Where every received image is uploaded, exactly once.', destinationsEditor()),
      section('Network', 'How this appliance reaches the cloud and Entra ID: a proxy, and CAs to trust besides the usual ones.',
        h('div.fields',
          field('Proxy URL', 'network.proxy.url', text(s.network.proxy.url), 'e.g. http://proxy.clinic.lan:3128. Empty: the HTTPS_PROXY and HTTP_PROXY environment variables decide.'),
          field('Proxy user', 'network.proxy.user', text(s.network.proxy.user)),
          field('Proxy password', 'network.proxy.password', text(s.network.proxy.password, 'password', { autocomplete: 'off' })),
          field('No proxy for', 'network.proxy.noProxy', text(s.network.proxy.noProxy), 'Comma-separated host names, .domain suffixes or host:port reached directly.'),
          field('Extra trusted CAs (PEM file)', 'network.caFile', text(s.network.caFile), 'A PEM bundle on this machine: the CA of a TLS-inspecting proxy or of a server on the clinic network.'))),
      section('Storage', 'Limits for the local archive.',
        h('div.fields',
          field('Maximum archive size (GB)', 'storage.maxArchiveBytes', text(round(s.storage.maxArchiveBytes / GB), 'number', { min: 0, step: 'any' }), '0 means no limit.'),
          field('Keep free on disk (GB)', 'storage.minFreeBytes', text(round(s.storage.minFreeBytes / GB), 'number', { min: 0, step: 'any' }), 'Receiving stops before the disk gets fuller than this.'),
          h('label.check', { dataset: { path: 'storage.evictDelivered' } }, check(s.storage.evictDelivered), ' Free space by removing the oldest studies once they are delivered')),
        window.dicomEdge ? h('button.btn', { type: 'button', onclick: () => void window.dicomEdge!.openDataFolder() }, 'Open data folder') : null),
    );
    // Checkboxes built with h('label.check', …) need their path on the input itself.
    for (const label of form.querySelectorAll<HTMLElement>('label.check[data-path]')) {
      const input = label.querySelector('input')!;
      input.dataset.path = label.dataset.path!;
    }
  }

  function peersEditor(): HTMLElement {
    const rows = h('div.peer-rows');
    const draw = (): void => {
      rows.replaceChildren(...(settings.peers as Json[]).map((peer, i) => {
        const result = h('span.echo-result');
        return h('div.peer-row', { dataset: { index: String(i) } },
          field('AE title', `peers.${i}.aeTitle`, text(peer.aeTitle)),
          field('Host', `peers.${i}.host`, text(peer.host)),
          field('Port', `peers.${i}.port`, text(peer.port, 'number')),
          field('Description', `peers.${i}.description`, text(peer.description)),
          h('div.row-actions',
            h('button.btn', { type: 'button', onclick: async () => {
              collect();
              const p = settings.peers[i];
              result.className = 'echo-result busy';
              result.textContent = 'Testing…';
              try {
                const r = await echoPeer({ aeTitle: p.aeTitle, host: p.host, port: Number(p.port) });
                result.className = `echo-result ${r.ok ? 'ok' : 'bad'}`;
                result.textContent = r.ok ? `C-ECHO OK (${r.ms} ms)` : `Failed: ${r.error}`;
              } catch (error) {
                result.className = 'echo-result bad';
                result.textContent = `Failed: ${(error as Error).message}`;
              }
            } }, 'C-ECHO test'),
            h('button.btn.ghost', { type: 'button', onclick: () => { collect(); settings.peers.splice(i, 1); draw(); } }, 'Remove'),
            result));
      }));
    };
    draw();
    return h('div', rows, h('button.btn', { type: 'button', onclick: () => { collect(); settings.peers.push({ aeTitle: '', host: '', port: 104, description: '' }); draw(); } }, '+ Add peer'));
  }

  function destinationsEditor(): HTMLElement {
    const list = h('div.dest-editors');
    const draw = (): void => {
      list.replaceChildren(...(settings.destinations as Json[]).map((d, i) => destinationEditor(d, i, draw)));
      if (settings.destinations.length === 0) list.append(h('p.muted', 'No destination yet: received images wait safely in the local outbox.'));
    };
    draw();
    return h('div', list, h('button.btn', { type: 'button', onclick: () => {
      collect();
      settings.destinations.push({ name: `destination-${settings.destinations.length + 1}`, baseUrl: '', enabled: true, auth: { kind: 'entra-client-secret', scope: 'https://dicom.healthcareapis.azure.com/.default' }, upsert: false });
      draw();
    } }, '+ Add destination'));
  }

  function destinationEditor(d: Json, i: number, redraw: () => void): HTMLElement {
    d.auth ??= { kind: 'none' };
    const kind = h('select.select', ...AUTH_KINDS.map(([v, l]) => h('option', { value: v }, l)));
    kind.value = d.auth.kind;
    kind.addEventListener('change', () => {
      collect();
      d.auth = { kind: kind.value, scope: d.auth.scope ?? 'https://dicom.healthcareapis.azure.com/.default' };
      redraw();
    });
    const result = h('div.test-result');
    const authFields = (AUTH_FIELDS[d.auth.kind] ?? []).map(([key, label, type]) =>
      field(label, `destinations.${i}.auth.${key}`, text(d.auth[key], type ?? 'text', type === 'password' ? { autocomplete: 'off' } : {})));
    const deviceBox = h('div.device-code', { hidden: d.auth.kind !== 'entra-device-code' });
    const showDevice = (s: Awaited<ReturnType<typeof deviceCodeStatus>>): void => {
      if (s.state === 'waiting') {
        deviceBox.replaceChildren(h('p', 'On any device, open ', h('a', { href: s.verificationUri, target: '_blank', rel: 'noopener' }, s.verificationUri), ' and enter the code:'),
          h('div.user-code', s.userCode), h('p.muted', s.message));
      } else if (s.state === 'signed-in') {
        deviceBox.replaceChildren(h('p.ok', `Signed in as ${s.account}.`));
      } else if (s.state === 'failed') {
        deviceBox.replaceChildren(h('p.bad', `Sign-in failed: ${s.error}`));
      }
    };
    return h('article.dest-editor', { dataset: { index: String(i) } },
      h('div.fields',
        field('Name', `destinations.${i}.name`, text(d.name)),
        field('DICOMweb base URL', `destinations.${i}.baseUrl`, text(d.baseUrl, 'url', { placeholder: 'https://<workspace>-<service>.dicom.azurehealthcareapis.com/v2' })),
        field('Authentication', `destinations.${i}.auth.kind`, kind),
        ...authFields,
        h('label.check', { dataset: { path: `destinations.${i}.enabled` } }, check(d.enabled !== false), ' Enabled'),
        h('label.check', { dataset: { path: `destinations.${i}.upsert` } }, check(d.upsert), ' Overwrite existing copies (upsert, Azure v2)'),
        h('label.check', { dataset: { path: `destinations.${i}.allowInsecureHttp` } }, check(d.allowInsecureHttp), ' Allow plain http to a server on the local network (unencrypted)')),
      h('div.row-actions',
        h('button.btn', { type: 'button', onclick: async () => {
          result.className = 'test-result busy';
          result.textContent = 'Getting a token, then asking for one study…';
          try {
            collect();
            const r = await testDestination(d.name, settings.destinations[i]);
            result.className = `test-result ${r.ok ? 'ok' : 'bad'}`;
            result.textContent = r.ok ? `Connection works (${r.message})` : `Failed at ${r.step === 'token' ? 'sign-in' : 'the query'}${r.status ? ` (HTTP ${r.status})` : ''}: ${r.message}`;
          } catch (error) {
            result.className = 'test-result bad';
            const problems = error instanceof ApiError ? error.problems : [];
            if (problems.length > 0) showProblems(problems.map((p) => ({ ...p, path: p.path.replace(/^destination\./, `destinations.${i}.`) })));
            result.textContent = problems.length > 0 ? `Not tested: ${problems.map((p) => p.message).join('; ')}` : `Failed: ${(error as Error).message}`;
          }
        } }, 'Test connection'),
        d.auth.kind === 'entra-device-code' ? h('button.btn', { type: 'button', onclick: async () => {
          try {
            showDevice(await startDeviceCode(d.name));
            const timer = setInterval(async () => {
              const s = await deviceCodeStatus(d.name).catch(() => undefined);
              if (!s) return;
              showDevice(s);
              if (s.state !== 'waiting') clearInterval(timer);
            }, 2000);
            timers.push(timer);
          } catch (error) {
            deviceBox.replaceChildren(h('p.bad', `Cannot start sign-in: ${(error as Error).message}`));
          }
        } }, 'Sign in with a device code') : null,
        h('button.btn.ghost', { type: 'button', onclick: () => { collect(); settings.destinations.splice(i, 1); redraw(); } }, 'Remove')),
      result, deviceBox);
  }

  /** Reads every bound input back into `settings`. */
  function collect(): void {
    for (const input of form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('[data-path]')) {
      if (!(input instanceof HTMLInputElement || input instanceof HTMLSelectElement)) continue;
      const path = input.dataset.path!;
      let value: unknown = input instanceof HTMLInputElement && input.type === 'checkbox' ? input.checked : input.value;
      if (path === 'dimse.allowedCallingAes') value = String(value).split(/[\s,]+/).filter(Boolean);
      else if (path === 'storage.maxArchiveBytes' || path === 'storage.minFreeBytes') value = value === '' ? NaN : Math.round(Number(value) * GB);
      else if (input instanceof HTMLInputElement && input.type === 'number') value = value === '' ? NaN : Number(value);
      // Left empty: not set (an Entra kind then says the client ID is required; a managed identity is system-assigned).
      else if (/\.auth\.(authority|clientId)$/.test(path) && value === '') value = undefined;
      setPath(settings, path, value);
    }
  }

  function showProblems(problems: FieldProblem[]): void {
    for (const el of form.querySelectorAll<HTMLElement>('.field-error')) el.textContent = '';
    for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
    const unplaced: string[] = [];
    for (const p of problems) {
      const target = findErrorSlot(p.path);
      if (target) {
        // The first problem of a field is the one to fix first (an empty AE title is too short before it is blank).
        if (!target.textContent) target.textContent = p.message;
        target.closest('.field')?.classList.add('invalid');
      } else {
        unplaced.push(p.path ? `${p.path}: ${p.message}` : p.message);
      }
    }
    status.className = `save-status ${problems.length ? 'bad' : 'ok'}`;
    status.textContent = problems.length ? `${problems.length} field${problems.length === 1 ? '' : 's'} need${problems.length === 1 ? 's' : ''} attention${unplaced.length ? `: ${unplaced.join('; ')}` : ''}` : '';
    form.querySelector('.invalid input, .invalid select')?.scrollIntoView({ block: 'center' });
  }

  function findErrorSlot(path: string): HTMLElement | null {
    // The most specific field for the path, or the nearest parent field (e.g. "dimse.allowedCallingAes.1").
    for (let p = path; p; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
      const slot = form.querySelector<HTMLElement>(`[data-error-for="${CSS.escape(p)}"]`);
      if (slot) return slot;
    }
    return null;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    collect();
    // The settings schema itself, as the server checks it (kept secrets read as the mask); the server checks again.
    const checked = maskedSettingsSchema.safeParse(settings);
    const problems = checked.success ? [] : fieldProblems(checked.error);
    showProblems(problems);
    if (problems.length > 0) return;
    saveButton.disabled = true;
    status.className = 'save-status';
    status.textContent = 'Saving…';
    try {
      const saved = await putSettings(settings as SettingsDraft);
      settings = saved.settings;
      render();
      status.className = 'save-status ok';
      status.textContent = 'Saved';
      toast(saved.restartRequired.length > 0
        ? `Settings saved. In force after a restart: ${saved.restartRequired.join(', ')}.`
        : 'Settings saved and in force.');
    } catch (error) {
      if (error instanceof ApiError && error.problems.length > 0) showProblems(error.problems);
      else {
        status.className = 'save-status bad';
        status.textContent = `Not saved: ${(error as Error).message}`;
      }
    } finally {
      saveButton.disabled = false;
    }
  });

  getSettings().then((loaded) => {
    settings = loaded;
    render();
    element.dataset.loaded = 'true';
  }).catch((error) => form.replaceChildren(h('p.notice', `Cannot read the settings: ${(error as Error).message}`)));

  return { element, dispose: () => timers.forEach(clearInterval) };
}

function section(title: string, subtitle: string, ...body: (Node | null)[]): HTMLElement {
  return h('section.panel.settings-section', h('h2', title), h('p.muted', subtitle), ...body);
}

function round(n: unknown): number | string {
  return typeof n === 'number' && Number.isFinite(n) ? Math.round(n * 100) / 100 : '';
}

function setPath(target: Json, path: string, value: unknown): void {
  const keys = path.split('.');
  let cursor: Json = target;
  for (const key of keys.slice(0, -1)) {
    cursor[key] ??= /^\d+$/.test(key) ? [] : {};
    cursor = cursor[key];
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete cursor[last];
  else cursor[last] = value;
}
