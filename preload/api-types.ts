/**
 * The one object the preload exposes to the page as `window.dicomEdge`. Shared by preload/ and renderer/;
 * a plain browser has no bridge, and the renderer then falls back to its own origin and a cookie.
 */
export interface DicomEdgeBridge {
  /** Origin of the local HTTP server, e.g. "http://127.0.0.1:8780". */
  readonly apiBaseUrl: string;
  /** Session token for `Authorization: Bearer`. */
  readonly sessionToken: string;
  readonly appVersion: string;
  /** Opens the data folder in the OS file manager. */
  openDataFolder(): Promise<void>;
  /** Native folder picker; null when cancelled. */
  pickFolder(): Promise<string | null>;
}

/** What the main process hands the preload at start (over one synchronous, sender-checked IPC). */
export interface BridgeBootstrap {
  apiBaseUrl: string;
  sessionToken: string;
  appVersion: string;
}

/** IPC channel names; the only channels the main process answers. */
export const IPC_CHANNELS = {
  bootstrap: 'dicom-edge:bootstrap',
  openDataFolder: 'dicom-edge:open-data-folder',
  pickFolder: 'dicom-edge:pick-folder',
} as const;

declare global {
  interface Window {
    dicomEdge?: DicomEdgeBridge;
  }
}
