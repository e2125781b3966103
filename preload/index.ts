// Runs sandboxed with context isolation; bundled to dist/preload/index.cjs. Exposes exactly one frozen
// object; ipcRenderer itself never reaches the page.
import { contextBridge, ipcRenderer } from 'electron';
import { IPC_CHANNELS, type BridgeBootstrap, type DicomEdgeBridge } from './api-types.js';

const boot = ipcRenderer.sendSync(IPC_CHANNELS.bootstrap) as BridgeBootstrap | null;

const bridge: DicomEdgeBridge = Object.freeze({
  apiBaseUrl: boot?.apiBaseUrl ?? '',
  sessionToken: boot?.sessionToken ?? '',
  appVersion: boot?.appVersion ?? '',
  openDataFolder: async (): Promise<void> => {
    await ipcRenderer.invoke(IPC_CHANNELS.openDataFolder);
  },
  pickFolder: async (): Promise<string | null> => {
    const picked: unknown = await ipcRenderer.invoke(IPC_CHANNELS.pickFolder);
    return typeof picked === 'string' ? picked : null;
  },
});

contextBridge.exposeInMainWorld('dicomEdge', bridge);
