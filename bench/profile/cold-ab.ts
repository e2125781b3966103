/**
 * Two appliances side by side, for comparing a change on a shared, loaded machine (not a benchmark):
 * `AB_A='VAR=1' AB_B='VAR=2' npx tsx bench/profile/cold-ab.ts [studies] [instances] [warm]`. Orthanc as the
 * archive holds `studies` CT studies of `instances` each (default 6 × 50); appliance A runs with the
 * environment AB_A adds, B with AB_B's. Each study is read cold from both, in alternating order, so both see
 * the same load; then (with warm > 0) `warm` warm reads of each from both. It prints each read's time and
 * the appliance's CPU seconds, and the medians. Orthanc direct is read alongside, for the ratio, and so is
 * Orthanc's answer relayed by a bare Node pass-through (the ceiling of any relay of the archive); with
 * warm reads a bare Node server answering the same number of bytes from memory (the ceiling of any Node
 * server for this client on this machine). To compare two versions of the code, give one the other checkout:
 * `AB_A='BENCH_APPLIANCE_ROOT=/tmp/base-worktree'` (a `git worktree add` of the older commit, with node_modules).
 */
import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrthanc } from '../../test/support/orthanc.js';
import { AUTH, freshArchiveDataDir, getBytes, serveAppliance, stowFiles, type ServedAppliance } from '../_dicomweb.js';
import { ctSeriesFiles } from '../_instances.js';
import { cpuSeconds, loadAverage } from '../_measure.js';
import { medianOf as median, memoryServer, passThroughServer } from './_memory-server.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WORK = join(ROOT, 'bench', '.work', 'profile-ab');
const STUDIES = Number(process.argv[2] ?? 6);
const COUNT = Number(process.argv[3] ?? 50);
const WARM = Number(process.argv[4] ?? 0);

async function timed(url: string, headers: Record<string, string>, pid?: number): Promise<{ ms: number; cpu: number; bytes: number }> {
  const c0 = pid === undefined ? 0 : await cpuSeconds(pid);
  const t0 = performance.now();
  const bytes = await getBytes(url, headers);
  const ms = performance.now() - t0;
  return { ms, cpu: pid === undefined ? 0 : (await cpuSeconds(pid)) - c0, bytes };
}

async function appliance(name: string, env: string, archiveUrl: string): Promise<ServedAppliance> {
  const dataDir = join(WORK, name);
  await freshArchiveDataDir(dataDir, archiveUrl);
  const saved = { ...process.env };
  for (const pair of env.split(/\s+/).filter(Boolean)) {
    const [key, ...value] = pair.split('=');
    process.env[key!] = value.join('=');
  }
  try {
    return await serveAppliance(dataDir, join(WORK, `${name}.log`));
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}


async function main(): Promise<void> {
  console.log(`load average: ${await loadAverage()}  A: ${process.env.AB_A ?? ''}  B: ${process.env.AB_B ?? ''}`);
  await mkdir(WORK, { recursive: true });
  const orthanc = await startOrthanc({ dir: join(WORK, 'orthanc'), startTimeoutMs: 120_000 });
  try {
    const studies: string[] = [];
    for (let s = 0; s < STUDIES; s++) {
      const ct = await ctSeriesFiles(join(WORK, `ct-${s}-${COUNT}`), COUNT, `2.25.94${s}${COUNT}`);
      for (let i = 0; i < ct.paths.length; i += 50) await stowFiles(`${orthanc.dicomWebUrl}/studies`, ct.paths.slice(i, i + 50), {});
      studies.push(ct.studyUid);
    }
    const a = await appliance('a', process.env.AB_A ?? '', orthanc.dicomWebUrl);
    const b = await appliance('b', process.env.AB_B ?? '', orthanc.dicomWebUrl);
    const results = { a: { cold: [] as number[], coldCpu: [] as number[], warm: [] as number[], warmCpu: [] as number[] }, b: { cold: [] as number[], coldCpu: [] as number[], warm: [] as number[], warmCpu: [] as number[] } };
    const direct: number[] = [];
    const ceiling: number[] = [];
    const relayed: number[] = [];
    let memory: { url: string; stop(): void } | undefined;
    const relay = await passThroughServer(orthanc.dicomWebUrl);
    try {
      for (const study of studies) {
        await timed(`${orthanc.dicomWebUrl}/studies/${study}`, {}); // Orthanc's caches
        for (const app of [a, b]) {
          const found = await fetch(`${app.dicomWebUrl}/studies?StudyInstanceUID=${study}`, { headers: { ...AUTH, accept: 'application/dicom+json' } });
          if (found.status !== 200) throw new Error(`QIDO ${found.status}`);
        }
      }
      for (const [i, study] of studies.entries()) {
        const order = i % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
        const line: string[] = [];
        for (const name of order) {
          const app = name === 'a' ? a : b;
          const cold = await timed(`${app.dicomWebUrl}/studies/${study}`, AUTH, app.pid);
          results[name].cold.push(cold.ms);
          results[name].coldCpu.push(cold.cpu);
          line.push(`${name} cold ${cold.ms.toFixed(0).padStart(5)} ms cpu ${cold.cpu.toFixed(2)}`);
        }
        const d = await timed(`${orthanc.dicomWebUrl}/studies/${study}`, {});
        direct.push(d.ms);
        const p = await timed(`${relay.url}/studies/${study}`, {});
        relayed.push(p.ms);
        console.log(`${line.join('   ')}   direct ${d.ms.toFixed(0).padStart(4)} ms   bare pass-through ${p.ms.toFixed(0).padStart(4)} ms`);
      }
      await new Promise((r) => setTimeout(r, 1000)); // the last commits
      if (WARM > 0) memory = await memoryServer((await timed(`${orthanc.dicomWebUrl}/studies/${studies[0]}`, {})).bytes);
      for (let w = 0; w < WARM; w++) {
        for (const [i, study] of studies.entries()) {
          const order = (i + w) % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
          for (const name of order) {
            const app = name === 'a' ? a : b;
            const warm = await timed(`${app.dicomWebUrl}/studies/${study}`, AUTH, app.pid);
            results[name].warm.push(warm.ms);
            results[name].warmCpu.push(warm.cpu);
          }
          direct.push((await timed(`${orthanc.dicomWebUrl}/studies/${study}`, {})).ms);
          ceiling.push((await timed(memory!.url, {})).ms);
        }
      }
    } finally {
      relay.stop();
      memory?.stop();
      await a.stop();
      await b.stop();
    }
    const d = median(direct);
    for (const name of ['a', 'b'] as const) {
      const r = results[name];
      const cold = median(r.cold);
      console.log(`${name}: cold median ${cold.toFixed(0)} ms (cpu ${median(r.coldCpu).toFixed(2)} s), ${(d / cold).toFixed(2)}× direct`
        + (r.warm.length ? `; warm median ${median(r.warm).toFixed(0)} ms (cpu ${median(r.warmCpu).toFixed(3)} s), ${(d / median(r.warm)).toFixed(2)}× direct` : ''));
    }
    console.log(`direct median ${d.toFixed(0)} ms; the same answer relayed by a bare Node pass-through (nothing parsed or stored): `
      + `median ${median(relayed).toFixed(0)} ms, ${(d / median(relayed)).toFixed(2)}× direct`
      + (ceiling.length ? `; the same bytes from memory (bare Node server): median ${median(ceiling).toFixed(0)} ms, ${(d / median(ceiling)).toFixed(2)}× direct` : '')
      + `; load average: ${await loadAverage()}`);
  } finally {
    await orthanc.stop().catch(() => undefined);
  }
}

await main();
