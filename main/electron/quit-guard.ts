/**
 * Quitting waits for the appliance to stop: no new associations, in-flight ingests finish and are
 * acknowledged, the index closes. Only then does the app really exit.
 */
export interface QuittableApp {
  on(event: 'before-quit', listener: (event: { preventDefault(): void }) => void): unknown;
  exit(code?: number): void;
}

export function guardQuit(app: QuittableApp, stopAppliance: () => Promise<void>, onError: (error: unknown) => void): void {
  let stopping: Promise<void> | undefined;
  app.on('before-quit', (event) => {
    event.preventDefault();
    if (stopping) return;
    stopping = stopAppliance()
      .catch((error: unknown) => onError(error))
      .then(() => app.exit(0));
  });
}
