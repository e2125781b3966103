// Loaded into the appliance with --import by the soak benchmark: appends the event-loop delay of each interval
// (p99 and max, in ms) as one JSON line to $SOAK_ELD_FILE. Plain JS: it loads before tsx.
import { appendFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.SOAK_ELD_FILE;
if (file) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  setInterval(() => {
    appendFileSync(file, `${JSON.stringify({ at: Date.now(), p99: histogram.percentile(99) / 1e6, max: histogram.max / 1e6 })}\n`);
    histogram.reset();
  }, Number(process.env.SOAK_ELD_INTERVAL_MS ?? 10_000)).unref();
}
