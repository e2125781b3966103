// Holds the commits of instances in the appliance's archive, to show what a reader gets before they are durable.
import type { WebAppliance } from './web-appliance.js';

/** Holds the commit of each instance behind its lock (Archive's private KeyedLock) until the returned release. */
export function holdCommits(w: WebAppliance, sopInstanceUids: string[]): () => Promise<void> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const lock = (w.appliance.archive as unknown as { lock: { run(key: string, task: () => Promise<void>): Promise<void> } }).lock;
  const held = sopInstanceUids.map((uid) => lock.run(uid, () => gate));
  return async () => {
    release();
    await Promise.all(held);
  };
}
