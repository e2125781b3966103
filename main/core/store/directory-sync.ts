import { open } from 'node:fs/promises';

/**
 * fsyncs directories so renames into them survive power loss, coalescing concurrent requests for the
 * same directory: a request waits for at most one sync that starts after it was made.
 */
export class DirectorySync {
  private readonly state = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

  sync(path: string): Promise<void> {
    const entry = this.state.get(path);
    if (!entry) return this.start(path);
    entry.next ??= entry.running.catch(() => undefined).then(() => this.start(path));
    return entry.next;
  }

  private start(path: string): Promise<void> {
    const running = fsyncDirectory(path).finally(() => {
      const entry = this.state.get(path);
      if (entry?.running !== running) return;
      // With a queued sync, that one takes the entry over when it starts.
      if (!entry.next) this.state.delete(path);
    });
    this.state.set(path, { running });
    return running;
  }
}

export async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
