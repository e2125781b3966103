/** Bytes and instances per second over a sliding window (default one minute). */
export class RateMeter {
  private readonly samples: Array<{ at: number; bytes: number; instances: number }> = [];

  constructor(private readonly windowMs = 60_000) {}

  record(bytes: number, instances: number, now = Date.now()): void {
    this.samples.push({ at: now, bytes, instances });
    this.prune(now);
  }

  rates(now = Date.now()): { bytesPerSecond: number; instancesPerSecond: number } {
    this.prune(now);
    if (this.samples.length === 0) return { bytesPerSecond: 0, instancesPerSecond: 0 };
    let bytes = 0;
    let instances = 0;
    for (const s of this.samples) {
      bytes += s.bytes;
      instances += s.instances;
    }
    const seconds = this.windowMs / 1000;
    return { bytesPerSecond: Math.round(bytes / seconds), instancesPerSecond: Math.round((instances / seconds) * 100) / 100 };
  }

  private prune(now: number): void {
    while (this.samples.length > 0 && this.samples[0]!.at < now - this.windowMs) this.samples.shift();
  }
}
