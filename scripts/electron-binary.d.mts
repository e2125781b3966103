/** Where the Electron binary is, or undefined when it was never downloaded. */
export function installedElectronBinary(): string | undefined;
