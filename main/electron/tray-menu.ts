/** The tray menu's items as data (tested), turned into an Electron Menu by main.ts. */
export interface TrayMenuState {
  paused: boolean;
  canPause: boolean;
  startAtLogin: boolean;
  startMinimised: boolean;
}

export interface TrayMenuActions {
  open(): void;
  setPaused(paused: boolean): void;
  setStartAtLogin(value: boolean): void;
  setStartMinimised(value: boolean): void;
  quit(): void;
}

export interface TrayMenuItem {
  label?: string;
  type?: 'normal' | 'separator' | 'checkbox';
  checked?: boolean;
  enabled?: boolean;
  click?: () => void;
}

export function trayMenuItems(state: TrayMenuState, actions: TrayMenuActions): TrayMenuItem[] {
  return [
    { label: 'Open DICOM Edge', click: () => actions.open() },
    { type: 'separator' },
    { label: 'Pause uploads', type: 'checkbox', checked: state.paused, enabled: state.canPause, click: () => actions.setPaused(!state.paused) },
    { type: 'separator' },
    { label: 'Start at login', type: 'checkbox', checked: state.startAtLogin, click: () => actions.setStartAtLogin(!state.startAtLogin) },
    { label: 'Start minimised to tray', type: 'checkbox', checked: state.startMinimised, click: () => actions.setStartMinimised(!state.startMinimised) },
    { type: 'separator' },
    { label: 'Quit (waits for images being received)', click: () => actions.quit() },
  ];
}

/** The forward service, found among the appliance's services by the control methods it offers. */
export interface PausableForward {
  pause(destination: string): void;
  resume(destination: string): void;
}

export function findPausable(services: readonly unknown[]): PausableForward | undefined {
  for (const service of services) {
    const candidate = service as Partial<PausableForward> & { control?: Partial<PausableForward> };
    if (typeof candidate.pause === 'function' && typeof candidate.resume === 'function') return candidate as PausableForward;
    const control = candidate.control;
    if (control && typeof control.pause === 'function' && typeof control.resume === 'function') return control as PausableForward;
  }
  return undefined;
}
