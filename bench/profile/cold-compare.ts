/**
 * Cold read-through A/B of two checkouts' compiled cores (not a benchmark): `npx tsx bench/profile/cold-compare.ts
 * ROOT_A ROOT_B [rounds]`, e.g. a `git worktree add` of the code before a change against this checkout. Each root
 * must have run `node scripts/build.mjs --core`. Orthanc (the cache bench's, with its 500-instance CT study, from
 * BENCH_CACHE_WORK or this checkout's bench/.work/cache) is the archive; each round reads the study cold through
 * a fresh appliance of each root in alternating order, and Orthanc direct, all timed by curl; each read prints the
 * appliance's CPU seconds by thread. COMPARE_B_FLAGS adds Node flags to B's (e.g. `--max-semi-space-size=1`, to
 * compare a flag on one checkout given twice).
 */
import { join } from 'node:path';
import { startOrthanc } from '../../test/support/orthanc.js';
import { spawnDaemon, untilReadyOrExit } from '../../test/support/daemon.js';
import { freePort } from '../../test/support/net.js';
import { APPLIANCE_NODE_FLAGS } from '../../scripts/node-flags.mjs';
import { AUTH, TOKEN, curlBytes, freshArchiveDataDir } from '../_dicomweb.js';
import { ctSeriesFiles } from '../_instances.js';
import { cpuSeconds, loadAverage, median, threadCpuSeconds } from '../_measure.js';

const WORK = process.env.BENCH_CACHE_WORK ?? join(process.cwd(), 'bench/.work/cache');
const [rootA, rootB] = [process.argv[2]!, process.argv[3]!];
const ROUNDS = Number(process.argv[4] ?? 3);
const ct = await ctSeriesFiles(join(WORK, 'ct500'), 500, '2.25.9200000');
const orthanc = await startOrthanc({ dir: join(WORK, 'orthanc'), storageDir: join(WORK, 'orthanc', 'storage'), startTimeoutMs: 120_000 });

async function coldRead(root: string, name: string, flags: string[] = []): Promise<{ s: number; cpu: number }> {
  const dataDir = join(WORK, 'compare', name);
  await freshArchiveDataDir(dataDir, orthanc.dicomWebUrl);
  const httpPort = await freePort();
  const daemon = spawnDaemon(process.execPath, [...APPLIANCE_NODE_FLAGS, ...flags, join(root, 'dist/main/core/cli.js'), 'serve', '--data-dir', dataDir,
    '--http-port', String(httpPort), '--dimse-port', String(await freePort()), '--api-token', TOKEN], { cwd: root, logFile: join(WORK, `compare-${name}.log`) });
  const base = `http://127.0.0.1:${httpPort}`;
  try {
    await untilReadyOrExit(daemon, 'appliance', (async () => {
      for (;;) {
        try { if ((await fetch(`${base}/api/ready`, { headers: AUTH })).ok) return; } catch { /* not yet */ }
        await new Promise((r) => setTimeout(r, 200));
      }
    })());
    await fetch(`${base}/dicom-web/studies?StudyInstanceUID=${ct.studyUid}`, { headers: { ...AUTH, accept: 'application/dicom+json' } });
    const c0 = await cpuSeconds(daemon.process.pid!);
    const t0 = await threadCpuSeconds(daemon.process.pid!);
    const read = await curlBytes(`${base}/dicom-web/studies/${ct.studyUid}`, AUTH);
    const cpu = (await cpuSeconds(daemon.process.pid!)) - c0;
    const t1 = await threadCpuSeconds(daemon.process.pid!);
    console.log(`  ${name}: ${read.seconds.toFixed(3)} s,`, [...t1].map(([n, c]) => [n, c - (t0.get(n) ?? 0)] as const).filter(([, c]) => c > 0).map(([n, c]) => `${n} ${c.toFixed(2)}`).join(', '));
    return { s: read.seconds, cpu };
  } finally {
    await daemon.stop();
  }
}

try {
  console.log('load', await loadAverage());
  const study = `${orthanc.dicomWebUrl}/studies/${ct.studyUid}`;
  await curlBytes(study, {});
  const a: Array<{ s: number; cpu: number }> = [], b: Array<{ s: number; cpu: number }> = [], d: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) { a.push(await coldRead(rootA, 'a')); b.push(await coldRead(rootB, 'b', process.env.COMPARE_B_FLAGS?.split(' ').filter(Boolean))); } else { b.push(await coldRead(rootB, 'b', process.env.COMPARE_B_FLAGS?.split(' ').filter(Boolean))); a.push(await coldRead(rootA, 'a')); }
    d.push((await curlBytes(study, {})).seconds);
    console.log(`round ${r}: A ${a.at(-1)!.s.toFixed(3)} s (cpu ${a.at(-1)!.cpu.toFixed(2)}), B ${b.at(-1)!.s.toFixed(3)} s (cpu ${b.at(-1)!.cpu.toFixed(2)}), direct ${d.at(-1)!.toFixed(3)} s`);
  }
  const md = median(d, (x) => x), ma = median(a, (x) => x.s), mb = median(b, (x) => x.s);
  console.log(`median: A ${ma.s.toFixed(3)} s ${(md / ma.s).toFixed(2)}×, B ${mb.s.toFixed(3)} s ${(md / mb.s).toFixed(2)}×, direct ${md.toFixed(3)} s`);
  console.log('load', await loadAverage());
} finally {
  await orthanc.stop();
}
