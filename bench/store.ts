/**
 * `npm run bench -- store`: the archive's ingest alone (temp file + fsync + rename + one SQLite
 * transaction per instance), 8 concurrent writers, on two generated workloads.
 * The side-by-side with DCMTK and Orthanc is `npm run bench -- ingest` (over DIMSE).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { Archive } from '../main/core/store/archive.js';
import { makeInstance } from '../test/support/instance.js';
import { newUid } from '../test/support/uid.js';
import { WORKLOADS, type Workload } from './_workloads.js';

const WRITERS = 8;


function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runWorkload(workload: Workload) {
  const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-bench-store-'));
  const { archive } = await Archive.open({
    dataDir: dir,
    limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
    logger: pino({ level: 'silent' }),
  });
  const studyUid = newUid();
  const seriesUid = newUid();
  // Generated before timing, so the numbers are the archive's alone.
  const instances = Array.from({ length: workload.count }, (_, i) =>
    makeInstance({ studyUid, seriesUid, instanceNumber: i + 1, rows: workload.rows, columns: workload.columns }),
  );
  const totalBytes = instances.reduce((sum, b) => sum + b.length, 0);
  const latencies: number[] = [];
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < instances.length) {
        const bytes = instances[next++]!;
        const t0 = performance.now();
        await archive.ingest(Readable.from([bytes.subarray(0, 65536), bytes.subarray(65536)]), { callingAe: 'BENCH', peer: 'bench' });
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  await archive.close();
  await rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return {
    workload: workload.name,
    instances: workload.count,
    seconds: seconds.toFixed(2),
    'instances/s': (workload.count / seconds).toFixed(0),
    'MB/s': (totalBytes / 1e6 / seconds).toFixed(1),
    'p50 ms': percentile(latencies, 50).toFixed(1),
    'p99 ms': percentile(latencies, 99).toFixed(1),
    'peak RSS MB': (peakRss / 1e6).toFixed(0),
  };
}

export async function run(): Promise<void> {
  const rows = [];
  for (const workload of WORKLOADS) rows.push(await runWorkload(workload));
  console.log(`archive ingest, ${WRITERS} concurrent writers, durability on (fsync + WAL synchronous=FULL)`);
  console.table(rows);
}
