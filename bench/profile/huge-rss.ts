/**
 * Peak RSS of an appliance streaming a 2 GB cloud instance through (not a benchmark: the cache bench's case
 * alone, repeated): `npx tsx bench/profile/huge-rss.ts [runs] [modes]`. modes is a comma list of `tsx`
 * (the TypeScript source through tsx) and `compiled` (the compiled core, as production runs it); default
 * both. Each run is a fresh appliance whose archive is the bench's streaming archive; it prints the RSS
 * after the QIDO, the peak (VmHWM) after the read, and the seconds, then the medians per mode.
 */
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamingArchive } from '../cache.js';
import { AUTH, freshArchiveDataDir, serveAppliance, timeGet } from '../_dicomweb.js';
import { HUGE_BYTES, writeHugeInstance } from '../_instances.js';
import { loadAverage, peakRssMb } from '../_measure.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WORK = join(ROOT, 'bench', '.work', 'profile-huge');
const RUNS = Number(process.argv[2] ?? 3);
const MODES = (process.argv[3] ?? 'tsx,compiled').split(',');

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The 2 GB instance, written once and kept (its UIDs beside it). */
async function hugeFile(): Promise<{ path: string; uids: { studyUid: string; seriesUid: string; sopInstanceUid: string } }> {
  const path = join(WORK, 'huge.dcm');
  const uidsFile = join(WORK, 'huge.json');
  await mkdir(WORK, { recursive: true });
  try {
    if ((await stat(path)).size >= HUGE_BYTES) return { path, uids: JSON.parse(await readFile(uidsFile, 'utf8')) };
  } catch {
    /* not made yet */
  }
  const uids = await writeHugeInstance(path);
  await writeFile(uidsFile, JSON.stringify(uids));
  return { path, uids };
}

async function main(): Promise<void> {
  console.log(`load average: ${await loadAverage()}  node ${process.version}  appliance args: ${process.env.BENCH_APPLIANCE_NODE_ARGS ?? ''}`);
  const { path, uids } = await hugeFile();
  const archive = await streamingArchive(path, uids);
  const peaks: Record<string, number[]> = {};
  try {
    for (let run = 0; run < RUNS; run++) {
      for (const mode of run % 2 === 0 ? MODES : [...MODES].reverse()) {
        const dataDir = join(WORK, `appliance-${mode}`);
        await freshArchiveDataDir(dataDir, archive.url);
        const appliance = await serveAppliance(dataDir, join(WORK, `appliance-${mode}.log`), [], { compiled: mode === 'compiled' });
        try {
          await fetch(`${appliance.dicomWebUrl}/studies?StudyInstanceUID=${uids.studyUid}`, { headers: { ...AUTH, accept: 'application/dicom+json' } });
          const before = await peakRssMb(appliance.pid);
          const samples: number[] = [];
          const sampler = setInterval(() => void readFile(`/proc/${appliance.pid}/status`, 'utf8')
            .then((status) => samples.push(Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024)).catch(() => undefined), 250);
          const got = await timeGet(`${appliance.dicomWebUrl}/studies/${uids.studyUid}/series/${uids.seriesUid}/instances/${uids.sopInstanceUid}`, AUTH);
          clearInterval(sampler);
          const peak = await peakRssMb(appliance.pid);
          const at = (share: number) => samples[Math.min(samples.length - 1, Math.floor(share * samples.length))]?.toFixed(0);
          (peaks[mode] ??= []).push(peak);
          console.log(`  ${mode.padEnd(8)} peak ${peak.toFixed(0)} MB (${before.toFixed(0)} MB after start and QIDO), ${got.seconds.toFixed(1)} s, ${got.bytes} bytes; RSS at 10/25/50/75/90% of the read: ${[0.1, 0.25, 0.5, 0.75, 0.9].map(at).join('/')} MB`);
        } finally {
          await appliance.stop();
          await rm(dataDir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    await archive.close();
  }
  for (const [mode, values] of Object.entries(peaks)) console.log(`${mode}: median peak ${median(values).toFixed(0)} MB of ${values.length} [${values.map((v) => v.toFixed(0)).join(' ')}]`);
  console.log(`load average after: ${await loadAverage()}`);
}

await main();
