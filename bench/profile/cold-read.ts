/**
 * Where a cold read-through's time goes (not a benchmark: one small study, one run, with a CPU profile).
 * `npx tsx bench/profile/cold-read.ts [count] [warm-runs]`: Orthanc as the archive holds a CT study of `count`
 * instances (default 100); a fresh appliance, run with --cpu-prof, finds it by QIDO, then reads it cold by
 * WADO-RS, then warm. It prints, for each read, the time to the first byte and the byte arrival timeline
 * (client side), the appliance's CPU seconds over the read, its read-through log lines, and the functions
 * with the most self time in its CPU profile (per file and per function), beside Orthanc direct.
 */
import { readdir, readFile, rm, mkdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { get as httpGet } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOrthanc } from '../../test/support/orthanc.js';
import { AUTH, freshArchiveDataDir, serveAppliance, stowFiles } from '../_dicomweb.js';
import { ctSeriesFiles } from '../_instances.js';
import { cpuSeconds, loadAverage } from '../_measure.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WORK = join(ROOT, 'bench', '.work', 'profile-cold');
const COUNT = Number(process.argv[2] ?? 100);
const WARM_RUNS = Number(process.argv[3] ?? 2);

/** User and system CPU seconds of a process so far (all threads). */
async function userSystem(pid: number): Promise<[number, number]> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(fields[11]) / 100, Number(fields[12]) / 100];
}

interface Timeline { ms: number; ttfbMs: number; bytes: number; marks: string }

/** GET with the byte arrival timeline: ms at which each quarter of the body had arrived. */
function timedGet(url: string, headers: Record<string, string>): Promise<Timeline> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let ttfb = 0;
    const arrivals: Array<[number, number]> = [];
    let bytes = 0;
    httpGet(url, { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*', ...headers } }, (response) => {
      response.on('data', (c: Buffer) => {
        if (bytes === 0) ttfb = performance.now() - t0;
        bytes += c.length;
        arrivals.push([performance.now() - t0, bytes]);
      });
      response.on('error', reject);
      response.on('end', () => {
        if (response.statusCode !== 200) return reject(new Error(`${url}: ${response.statusCode}`));
        const at = (share: number) => arrivals.find(([, b]) => b >= bytes * share)?.[0] ?? 0;
        resolve({ ms: performance.now() - t0, ttfbMs: ttfb, bytes,
          marks: [0.25, 0.5, 0.75, 1].map((s) => `${s * 100}%@${at(s).toFixed(0)}ms`).join(' ') });
      });
    }).on('error', reject);
  });
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; hitCount?: number; children?: number[] }
interface Profile { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[] }

/**
 * Self time per function and per file of a .cpuprofile, in ms, from the first sample in `from` (a file name
 * part) on: the start-up (tsx compiling the sources) is left out.
 */
function summarize(profile: Profile, from: string, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const inside = (id: number | undefined): boolean => {
    for (let at = id; at !== undefined; at = parent.get(at)) if (byId.get(at)!.callFrame.url.includes(from)) return true;
    return false;
  };
  const start = profile.samples.findIndex((id) => inside(id));
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    if (i < start) return;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    total += ms;
    self.set(id, (self.get(id) ?? 0) + ms);
  });
  console.log(`profile from the first sample in ${from}: ${total.toFixed(0)} ms`);
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, ms] of self) {
    const frame = byId.get(id)!.callFrame;
    const file = frame.url.replace(/^file:\/\//, '').replace(ROOT, '.').replace(/.*node_modules\//, 'nm:') || '(native)';
    const fn = `${frame.functionName || '(anon)'} ${file}:${frame.lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    byFile.set(file, (byFile.get(file) ?? 0) + ms);
  }
  const lines = (map: Map<string, number>) => [...map].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, v]) => `  ${v.toFixed(0).padStart(7)} ms  ${k}`).join('\n');
  return `by function:\n${lines(byFunction)}\nby file:\n${lines(byFile)}`;
}

async function main(): Promise<void> {
  console.log(`load average: ${await loadAverage()}`);
  await mkdir(WORK, { recursive: true });
  const ct = await ctSeriesFiles(join(WORK, `ct${COUNT}`), COUNT, `2.25.93${COUNT}`);
  const orthanc = await startOrthanc({ dir: join(WORK, 'orthanc'), startTimeoutMs: 120_000 });
  const profDir = join(WORK, 'prof');
  await rm(profDir, { recursive: true, force: true });
  const dataDir = join(WORK, 'appliance');
  try {
    for (let i = 0; i < ct.paths.length; i += 50) await stowFiles(`${orthanc.dicomWebUrl}/studies`, ct.paths.slice(i, i + 50), {});
    const study = `/studies/${ct.studyUid}`;
    for (let i = 0; i < 2; i++) await timedGet(`${orthanc.dicomWebUrl}${study}`, {}); // Orthanc's caches
    const direct = await timedGet(`${orthanc.dicomWebUrl}${study}`, {});

    await freshArchiveDataDir(dataDir, orthanc.dicomWebUrl);
    const logFile = join(WORK, 'appliance.log');
    const appliance = await serveAppliance(dataDir, logFile, ['--cpu-prof', '--cpu-prof-dir', profDir]);
    try {
      const found = await fetch(`${appliance.dicomWebUrl}/studies?StudyInstanceUID=${ct.studyUid}`, { headers: { ...AUTH, accept: 'application/dicom+json' } });
      if (found.status !== 200) throw new Error(`QIDO ${found.status}`);
      // PROFILE_STRACE=1: the system calls of the cold read (counts and time), all threads.
      const strace = process.env.PROFILE_STRACE ? spawn('strace', ['-f', '-c', '-p', String(appliance.pid)], { stdio: ['ignore', 'ignore', 'pipe'] }) : undefined;
      let straced = '';
      strace?.stderr.on('data', (c: Buffer) => (straced += c.toString()));
      // PROFILE_PERF=file: perf record (user space) of the appliance over the cold read.
      const perf = process.env.PROFILE_PERF ? spawn('perf', ['record', '-e', 'cpu-clock:u', '-F', '2000', ...(process.env.PROFILE_PERF_G ? ['-g'] : []), '-p', String(appliance.pid), '-o', process.env.PROFILE_PERF], { stdio: 'ignore' }) : undefined;
      if (strace || perf) await new Promise((r) => setTimeout(r, 1000)); // attached
      const cpu0 = await cpuSeconds(appliance.pid);
      const us0 = await userSystem(appliance.pid);
      const cold = await timedGet(`${appliance.dicomWebUrl}${study}`, AUTH);
      const us1 = await userSystem(appliance.pid);
      const cpu1 = await cpuSeconds(appliance.pid);
      console.log(`cold read: appliance user ${(us1[0] - us0[0]).toFixed(2)} s, system ${(us1[1] - us0[1]).toFixed(2)} s`);
      if (perf) {
        await new Promise((r) => setTimeout(r, 500));
        perf.kill('SIGINT');
        await once(perf, 'exit');
      }
      if (strace) {
        await new Promise((r) => setTimeout(r, 500)); // the commits after the last byte
        strace.kill('SIGINT');
        await once(strace, 'exit');
        console.log(straced.split('\n').slice(0, 30).join('\n'));
      }
      const warm: Timeline[] = [];
      for (let i = 0; i < WARM_RUNS; i++) warm.push(await timedGet(`${appliance.dicomWebUrl}${study}`, AUTH));
      const cpu2 = await cpuSeconds(appliance.pid);
      const direct2 = await timedGet(`${orthanc.dicomWebUrl}${study}`, {});
      const row = (name: string, t: Timeline, cpu?: number) =>
        console.log(`${name.padEnd(8)} ${t.ms.toFixed(0).padStart(6)} ms  ttfb ${t.ttfbMs.toFixed(0).padStart(5)} ms  ${(t.bytes / 1e6).toFixed(1)} MB  ${t.marks}${cpu === undefined ? '' : `  appliance cpu ${cpu.toFixed(2)} s`}`);
      row('direct', direct);
      row('cold', cold, cpu1 - cpu0);
      warm.forEach((t, i) => row(`warm${i + 1}`, t, i === 0 ? (cpu2 - cpu1) / warm.length : undefined));
      row('direct', direct2);
    } finally {
      await appliance.stop();
    }
    const log = (await readFile(logFile, 'utf8')).split('\n').filter((l) => /read-through|archive-/.test(l));
    console.log(`appliance read-through log:\n${log.map((l) => `  ${l.slice(0, 300)}`).join('\n')}`);
    const [file] = (await readdir(profDir)).filter((n) => n.endsWith('.cpuprofile'));
    if (file) console.log(summarize(JSON.parse(await readFile(join(profDir, file), 'utf8')) as Profile, 'read-through'));
    console.log(`profile: ${join(profDir, file ?? '(none)')}`);
  } finally {
    await orthanc.stop().catch(() => undefined);
  }
}

await main();
