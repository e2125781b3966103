/** The IPC handlers behind `window.dicomEdge`. Every message is checked against the sender frame first. */
import { IPC_CHANNELS, type BridgeBootstrap } from '../../preload/api-types.js';
import { isTrustedSender, type SenderFrame } from './security.js';

interface IpcEvent {
  senderFrame: SenderFrame | null;
  returnValue?: unknown;
}

/** The parts of Electron's ipcMain used here. */
export interface IpcMainLike {
  on(channel: string, listener: (event: IpcEvent) => void): unknown;
  handle(channel: string, listener: (event: IpcEvent) => unknown): void;
}

export interface BridgeHandlers {
  appOrigin: string;
  bootstrap: () => BridgeBootstrap;
  openDataFolder: () => Promise<void>;
  pickFolder: () => Promise<string | null>;
  onRejected?: (channel: string, url: string) => void;
}

export class UntrustedSenderError extends Error {
  constructor(channel: string) {
    super(`IPC ${channel} refused: sender is not the app window`);
    this.name = 'UntrustedSenderError';
  }
}

export function registerBridgeHandlers(ipcMain: IpcMainLike, handlers: BridgeHandlers): void {
  const trusted = (channel: string, event: IpcEvent): boolean => {
    if (isTrustedSender(event.senderFrame, handlers.appOrigin)) return true;
    handlers.onRejected?.(channel, event.senderFrame?.url ?? '(gone)');
    return false;
  };
  ipcMain.on(IPC_CHANNELS.bootstrap, (event) => {
    event.returnValue = trusted(IPC_CHANNELS.bootstrap, event) ? handlers.bootstrap() : null;
  });
  ipcMain.handle(IPC_CHANNELS.openDataFolder, (event) => {
    if (!trusted(IPC_CHANNELS.openDataFolder, event)) throw new UntrustedSenderError(IPC_CHANNELS.openDataFolder);
    return handlers.openDataFolder();
  });
  ipcMain.handle(IPC_CHANNELS.pickFolder, (event) => {
    if (!trusted(IPC_CHANNELS.pickFolder, event)) throw new UntrustedSenderError(IPC_CHANNELS.pickFolder);
    return handlers.pickFolder();
  });
}
