import { open, type FileHandle } from 'node:fs/promises';

/**
 * Runs a sync per key, coalescing concurrent requests for the same key: a request waits for at most one
 * sync that starts after it was made, so everything done before the request is covered.
 */
class CoalescedSync {
  private readonly state = new Map<string, { running: Promise<void>; next?: Promise<void> }>();

  constructor(private readonly run: (key: string) => Promise<void>) {}

  sync(key: string): Promise<void> {
    const entry = this.state.get(key);
    if (!entry) return this.start(key);
    entry.next ??= entry.running.catch(() => undefined).then(() => this.start(key));
    return entry.next;
  }

  private start(key: string): Promise<void> {
    const running = this.run(key).finally(() => {
      const entry = this.state.get(key);
      if (entry?.running !== running) return;
      // With a queued sync, that one takes the entry over when it starts.
      if (!entry.next) this.state.delete(key);
    });
    this.state.set(key, { running });
    return running;
  }
}

/** fsyncs directories so renames into them survive power loss. */
export class DirectorySync extends CoalescedSync {
  constructor() {
    super(fsyncDirectory);
  }
}

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * fsyncs SQLite's write-ahead log on the thread pool. Commits made with synchronous=NORMAL are written to
 * the log but not synced; one sync of the log after them makes them durable, as synchronous=FULL would,
 * without holding up the event loop for the disk.
 */
export class WalSync {
  private handle: FileHandle | undefined;
  private readonly syncs = new CoalescedSync(() => this.syncNow());

  constructor(private readonly walPath: string) {}

  sync(): Promise<void> {
    return this.syncs.sync(this.walPath);
  }

  private async syncNow(): Promise<void> {
    // The log exists from the first commit on and keeps its inode while the database is open.
    this.handle ??= await open(this.walPath, 'r');
    await this.handle.sync();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }
}
