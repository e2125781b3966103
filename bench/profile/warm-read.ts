/**
 * Which side limits a warm read (not a benchmark): `npx tsx bench/profile/warm-read.ts [runs]`. Orthanc holds
 * the bench's 500-instance CT study (bench/.work/cache, made by `npm run bench -- cache` or here); a fresh
 * appliance reads it through once, then each of three servers (the appliance warm, Orthanc, and a bare Node
 * server answering the same number of bytes from memory) is read `runs` times (default 5) by each of two
 * clients: node:http (_dicomweb's getBytes) and curl. It prints the median seconds of each pair, the
 * appliance's CPU seconds per warm read, and the ratios to Orthanc per client. PROFILE_COMPILED=1 runs the
 * appliance from the compiled core (as the cache bench does) instead of tsx.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrthanc } from '../../test/support/orthanc.js';
import { AUTH, freshArchiveDataDir, curlBytes, getBytes, serveAppliance, stowFiles } from '../_dicomweb.js';
import { ctSeriesFiles } from '../_instances.js';
import { cpuSeconds, loadAverage } from '../_measure.js';
import { medianOf as median, memoryServer } from './_memory-server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WORK = join(ROOT, 'bench', '.work', 'cache');
const RUNS = Number(process.argv[2] ?? 5);
const CT_COUNT = 500;


async function main(): Promise<void> {
  console.log(`load average: ${await loadAverage()}  node ${process.version}  appliance args: ${process.env.BENCH_APPLIANCE_NODE_ARGS ?? ''}  compiled: ${process.env.PROFILE_COMPILED === '1'}`);
  const ct = await ctSeriesFiles(join(WORK, 'ct500'), CT_COUNT, '2.25.9200000');
  const orthanc = await startOrthanc({ dir: join(WORK, 'orthanc'), storageDir: join(WORK, 'orthanc', 'storage'), startTimeoutMs: 120_000 });
  const dataDir = join(WORK, 'appliances', 'profile-warm');
  try {
    const listed = await fetch(`${orthanc.dicomWebUrl}/studies/${ct.studyUid}/instances`, { headers: { accept: 'application/dicom+json' } });
    if (listed.status !== 200 || ((await listed.json()) as unknown[]).length !== CT_COUNT) {
      for (let i = 0; i < ct.paths.length; i += 100) await stowFiles(`${orthanc.dicomWebUrl}/studies`, ct.paths.slice(i, i + 100), {});
    }
    await freshArchiveDataDir(dataDir, orthanc.dicomWebUrl);
    const appliance = await serveAppliance(dataDir, join(WORK, 'appliance-profile-warm.log'), [], { compiled: process.env.PROFILE_COMPILED === '1' });
    const study = `/studies/${ct.studyUid}`;
    let memory: { url: string; stop(): void } | undefined;
    try {
      const found = await fetch(`${appliance.dicomWebUrl}/studies?StudyInstanceUID=${ct.studyUid}`, { headers: { ...AUTH, accept: 'application/dicom+json' } });
      if (found.status !== 200) throw new Error(`QIDO ${found.status}`);
      const cold = await getBytes(`${appliance.dicomWebUrl}${study}`, AUTH);
      const directBytes = await getBytes(`${orthanc.dicomWebUrl}${study}`, {});
      // The same instances; only the boundaries (one per part) may differ in length.
      if (Math.abs(cold - directBytes) > 100 * (CT_COUNT + 1)) throw new Error(`cold read gave ${cold} bytes, Orthanc ${directBytes}`);
      await new Promise((r) => setTimeout(r, 2000)); // the last commits
      memory = await memoryServer(directBytes);
      const servers = {
        appliance: { url: `${appliance.dicomWebUrl}${study}`, headers: AUTH, bytes: cold },
        orthanc: { url: `${orthanc.dicomWebUrl}${study}`, headers: {}, bytes: directBytes },
        memory: { url: memory.url, headers: {}, bytes: directBytes },
      };
      const clients = {
        node: async (url: string, headers: Record<string, string>) => {
          const t0 = performance.now();
          const bytes = await getBytes(url, headers);
          return { seconds: (performance.now() - t0) / 1000, bytes };
        },
        curl: curlBytes,
      };
      const times: Record<string, number[]> = {};
      const cpu: Record<string, number[]> = {};
      for (let run = 0; run < RUNS + 1; run++) {
        for (const [clientName, client] of Object.entries(clients)) {
          const order = run % 2 === 0 ? Object.entries(servers) : Object.entries(servers).reverse();
          for (const [serverName, server] of order) {
            const key = `${serverName} / ${clientName}`;
            const c0 = await cpuSeconds(appliance.pid);
            const got = await client(server.url, server.headers);
            const c1 = await cpuSeconds(appliance.pid);
            if (got.bytes !== server.bytes) throw new Error(`${key}: ${got.bytes} bytes, not ${server.bytes}`);
            if (run === 0) continue; // warm-up
            (times[key] ??= []).push(got.seconds);
            if (serverName === 'appliance') (cpu[key] ??= []).push(c1 - c0);
          }
        }
      }
      console.log(`${directBytes} bytes per answer, median of ${RUNS}:`);
      for (const [key, values] of Object.entries(times)) {
        const client = key.split(' / ')[1]!;
        const ratio = median(times[`orthanc / ${client}`]!) / median(values);
        console.log(`  ${key.padEnd(18)} ${median(values).toFixed(3)} s  ${(directBytes / 1e6 / median(values)).toFixed(0).padStart(5)} MB/s  ${ratio.toFixed(2)}× Orthanc`
          + (cpu[key] ? `  appliance cpu ${median(cpu[key]!).toFixed(2)} s` : '') + `  [${values.map((v) => v.toFixed(3)).join(' ')}]`);
      }
    } finally {
      memory?.stop();
      await appliance.stop();
    }
  } finally {
    await orthanc.stop().catch(() => undefined);
    console.log(`load average after: ${await loadAverage()}`);
  }
}

await main();
