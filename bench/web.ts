/**
 * `npm run bench -- web`: the HTTP server beside Orthanc (with its DICOMweb plugin), on loopback.
 *  - QIDO-RS: p50/p99 of four queries over an index of STUDIES studies × 10 instances, in both.
 *  - STOW-RS: 500 CT instances (512×512×16) over HTTP into each (5 requests of 100 at once).
 *  - WADO-RS: retrieval of that 500-instance series, original bytes, from each.
 *  - viewer (issue 14's table, bench/_web-viewer.ts): /metadata p50 of that series, cold (and cached) series
 *    thumbnails, C-STORE acknowledgement p99 while thumbnails render against it alone, and WADO-RS transcoding
 *    of a JPEG 2000 series to Explicit VR LE.
 * Orthanc's load is slow, so its storage (and ours) stays under bench/.work/web between runs; a run
 * tops Orthanc up for at most BENCH_WEB_LOAD_SECONDS and then compares both at what Orthanc holds.
 * BENCH_WEB_ONLY=qido,stow,wado,viewer runs only those parts (WADO needs the STOW part's load and runs it too);
 * BENCH_WEB_PROF=DIR writes a CPU profile of the served appliance (the STOW/WADO one) into DIR;
 * BENCH_APPLIANCE_NODE_ARGS adds node flags to the served appliance (e.g. "--trace-gc", into appliance.log);
 * BENCH_KEEP=1 keeps the STOW rounds' files (renamed aside) for back-to-back comparisons.
 */
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { makeInstance } from '../test/support/instance.js';
import { startOrthanc, type OrthancPeer } from '../test/support/orthanc.js';
import { spawnDaemon } from '../test/support/daemon.js';
import { freePort } from '../test/support/net.js';
import { startWebAppliance, type WebAppliance } from '../test/support/web-appliance.js';
import { AUTH, TOKEN, getBytes, serveAppliance, stowFiles, timeGet, timeQuery, type ServedAppliance } from './_dicomweb.js';
import { ctSeriesFiles } from './_instances.js';
import { loadAverage, median, pool, table, withCpu } from './_measure.js';
import { benchViewerTable } from './_web-viewer.js';

const WORK = join(dirname(fileURLToPath(import.meta.url)), '.work', 'web');
const TARGET_STUDIES = Number(process.env.BENCH_WEB_STUDIES ?? 10_000);
const LOAD_SECONDS = Number(process.env.BENCH_WEB_LOAD_SECONDS ?? 1200);
const INSTANCES_PER_STUDY = 10;
const QUERY_RUNS = Number(process.env.BENCH_WEB_QUERY_RUNS ?? 200);
const CT_COUNT = 500;
/**
 * Fresh-server rounds of STOW (then WADO); the order alternates and the medians are reported. Three keep the
 * whole web bench near six minutes on a 2-core machine (once Orthanc's QIDO index is loaded).
 */
const ROUNDS = Number(process.env.BENCH_WEB_ROUNDS ?? 3);
/** WADO retrievals per server per round, alternating with the other server's, after one warm-up each. */
const WADO_RUNS = 5;
const ONLY = new Set((process.env.BENCH_WEB_ONLY ?? 'qido,stow,wado,viewer').split(',').map((s) => s.trim().toLowerCase()));

const LAST = ['Smith', 'Jones', 'Brown', 'Taylor', 'Wilson', 'Davies', 'Evans', 'Thomas', 'Johnson', 'Roberts', 'Walker', 'Wright',
  'Robinson', 'Thompson', 'White', 'Hughes', 'Edwards', 'Green', 'Hall', 'Wood', 'Harris', 'Lewis', 'Martin', 'Jackson', 'Clarke',
  'Clark', 'Turner', 'Hill', 'Scott', 'Cooper', 'Morris', 'Ward', 'Moore', 'King', 'Watson', 'Baker', 'Harrison', 'Morgan', 'Patel',
  'Young', 'Allen', 'Mitchell', 'James', 'Anderson', 'Phillips', 'Lee', 'Bell', 'Parker', 'Davis', 'Miller'];
const FIRST = ['Oliver', 'Amelia', 'Jack', 'Isla', 'Harry', 'Ava', 'Jacob', 'Emily', 'Charlie', 'Sophie', 'Thomas', 'Grace', 'George',
  'Mia', 'Oscar', 'Poppy', 'James', 'Ella', 'William', 'Lily'];
const MODALITIES = ['CT', 'MR', 'US', 'CR', 'DX', 'PT'];

/** Study i of the QIDO workload: deterministic, so both servers index exactly the same data. */
function studyInstances(i: number): Buffer[] {
  const root = `2.25.${7_000_000 + i}`;
  const day = i % 1826; // five years of dates
  const date = new Date(Date.UTC(2020, 0, 1) + day * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
  const shared = {
    studyUid: `${root}.1`,
    patientName: `${LAST[i % LAST.length]}^${FIRST[(i * 7) % FIRST.length]}`,
    patientId: `PID${String(i % 4000).padStart(5, '0')}`,
    studyDate: date,
    studyTime: String(80000 + (i % 1000) * 10).padStart(6, '0'),
    accession: `ACC${i}`,
    rows: 8,
    columns: 8,
  };
  const out: Buffer[] = [];
  for (let s = 0; s < 2; s++) {
    const modality = MODALITIES[(i + s * 3) % MODALITIES.length]!;
    for (let k = 0; k < INSTANCES_PER_STUDY / 2; k++) {
      out.push(makeInstance({
        ...shared, seriesUid: `${root}.2.${s}`, sopInstanceUid: `${root}.3.${s}.${k}`, seriesNumber: s + 1, instanceNumber: k + 1,
        modality, sopClassUid: '1.2.840.10008.5.1.4.1.1.7', frameOfReferenceUid: `${root}.4`,
      }));
    }
  }
  return out;
}

const QUERIES = [
  { name: 'PatientName prefix', path: '/studies?PatientName=Wil*' },
  { name: 'PatientID', path: '/studies?PatientID=PID00123' },
  { name: 'StudyDate range + ModalitiesInStudy', path: '/studies?StudyDate=20230101-20230131&ModalitiesInStudy=CT' },
  { name: 'most recent 100 studies', path: '/studies?limit=100' },
];

async function orthancStudyCount(orthanc: OrthancPeer): Promise<number> {
  const stats = (await (await fetch(`${orthanc.httpUrl}/statistics`)).json()) as { CountStudies: number };
  return stats.CountStudies;
}

async function loadOrthanc(orthanc: OrthancPeer): Promise<number> {
  let have = await orthancStudyCount(orthanc);
  const deadline = Date.now() + LOAD_SECONDS * 1000;
  const started = Date.now();
  const from = have;
  // Studies are loaded in index order, so "have" is also the next index to load.
  while (have < TARGET_STUDIES && Date.now() < deadline) {
    const batch = Array.from({ length: Math.min(200, TARGET_STUDIES - have) }, (_, k) => have + k);
    await pool(batch, 4, async (i) => {
      for (const bytes of studyInstances(i)) {
        const response = await fetch(`${orthanc.httpUrl}/instances`, { method: 'POST', body: bytes as unknown as BodyInit });
        if (!response.ok) throw new Error(`Orthanc refused study ${i}: ${response.status} ${await response.text()}`);
        await response.arrayBuffer();
      }
    });
    have += batch.length;
    const rate = ((have - from) * INSTANCES_PER_STUDY) / ((Date.now() - started) / 1000);
    process.stdout.write(`\r  Orthanc: ${have}/${TARGET_STUDIES} studies loaded (${rate.toFixed(0)} instances/s)   `);
  }
  process.stdout.write('\n');
  return orthancStudyCount(orthanc);
}

async function loadAppliance(w: WebAppliance, studies: number): Promise<void> {
  let have = w.appliance.archive.reads.indexCounts().studies;
  const started = Date.now();
  const from = have;
  while (have < studies) {
    const batch = Array.from({ length: Math.min(500, studies - have) }, (_, k) => have + k);
    const all = batch.flatMap((i) => studyInstances(i));
    await pool(all, 8, async (bytes) => {
      await w.appliance.archive.ingest(Readable.from([bytes]), { callingAe: 'BENCH', peer: 'bench' });
    });
    have += batch.length;
    const rate = ((have - from) * INSTANCES_PER_STUDY) / ((Date.now() - started) / 1000);
    process.stdout.write(`\r  appliance: ${have}/${studies} studies indexed (${rate.toFixed(0)} instances/s)   `);
  }
  process.stdout.write('\n');
}

async function benchStow(url: string, paths: string[], headers: Record<string, string>): Promise<number> {
  const groups = Array.from({ length: 5 }, (_, g) => paths.slice(g * 100, (g + 1) * 100));
  const t0 = performance.now();
  await Promise.all(groups.map((group) => stowFiles(url, group, headers)));
  return (performance.now() - t0) / 1000;
}

/**
 * The client's own ceiling: the same GET against a trivial server (another process) that sends `bytes`
 * from memory. If this is not well above both servers' rates, the benchmark measures the client.
 */
async function clientCeiling(bytes: number): Promise<{ seconds: number; bytes: number }> {
  const port = await freePort();
  const script = `const c=Buffer.alloc(512*1024,7);const n=Math.ceil(${bytes}/c.length);require('http').createServer((q,r)=>{r.writeHead(200,{'content-length':c.length*n});let i=0;const p=()=>{while(i<n){i++;if(!r.write(c))return r.once('drain',p)}r.end()};p()}).listen(${port},'127.0.0.1')`;
  const sink = spawnDaemon(process.execPath, ['-e', script]);
  try {
    for (;;) {
      try {
        await getBytes(`http://127.0.0.1:${port}/`, {});
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const runs = [];
    for (let r = 0; r < WADO_RUNS; r++) runs.push(await timeGet(`http://127.0.0.1:${port}/`, {}));
    return median(runs, (x) => x.seconds);
  } finally {
    await sink.stop();
  }
}

export async function run(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  const loadAtStart = await loadAverage();
  const results: Record<string, string>[] = [];

  if (ONLY.has('qido')) await benchQido(results);
  if (ONLY.has('stow') || ONLY.has('wado')) await benchStowWado(results);
  if (results.length > 0) console.table(results);
  if (ONLY.has('viewer')) {
    const viewer = await benchViewerTable(WORK);
    console.log('\nissue 14: what a viewer asks (appliance and Orthanc in the same run, both on loopback)');
    console.log(table([['measure', 'appliance', 'reference (Orthanc)', 'Orthanc ÷ appliance time', 'target'],
      ...viewer.map((r) => [r.measure, r.appliance, r.reference, r.ratio, r.target])]));
  }
  console.log(`\nload average (1, 5, 15 min): ${loadAtStart} at start, ${await loadAverage()} at end`);
}

async function benchQido(results: Record<string, string>[]): Promise<void> {
  // QIDO over the persistent index.
  const orthancDir = join(WORK, 'orthanc-qido');
  const orthanc = await startOrthanc({ dir: orthancDir, storageDir: join(orthancDir, 'storage'), startTimeoutMs: 120_000 });
  let w: WebAppliance | undefined;
  let served: ServedAppliance | undefined;
  try {
    const studies = await loadOrthanc(orthanc);
    if (studies < TARGET_STUDIES) console.log(`  Orthanc holds ${studies} of ${TARGET_STUDIES} studies after the load budget; comparing at ${studies}`);
    w = await startWebAppliance({ dataDir: join(WORK, 'appliance-qido'), overrides: { apiToken: TOKEN } });
    await loadAppliance(w, studies);
    await w.stop();
    w = undefined;
    served = await serveAppliance(join(WORK, 'appliance-qido'), join(WORK, 'appliance.log'));
    for (const query of QUERIES) {
      const ours = await timeQuery(`${served.dicomWebUrl}${query.path}`, AUTH, QUERY_RUNS);
      const theirs = await timeQuery(`${orthanc.dicomWebUrl}${query.path}`, {}, QUERY_RUNS);
      results.push({
        benchmark: `QIDO ${query.name} (${studies} studies × ${INSTANCES_PER_STUDY})`,
        'DICOM Edge': `p50 ${ours.p50.toFixed(2)} ms, p99 ${ours.p99.toFixed(2)} ms (${ours.results} results)`,
        Orthanc: `p50 ${theirs.p50.toFixed(2)} ms, p99 ${theirs.p99.toFixed(2)} ms (${theirs.results} results)`,
        'speed-up (p50)': `${(theirs.p50 / ours.p50).toFixed(1)}×`,
      });
    }
  } finally {
    await w?.stop();
    await served?.stop();
    await orthanc.stop();
  }
}

async function benchStowWado(results: Record<string, string>[]): Promise<void> {
  // STOW-RS and WADO-RS of a 500-instance CT series, into fresh servers, ROUNDS times.
  const ct = await ctSeriesFiles(join(WORK, 'ct500'), CT_COUNT, '2.25.9100000');
  const totalBytes = (await Promise.all(ct.paths.map(async (p) => (await readFile(p)).length))).reduce((a, b) => a + b, 0);
  const auth = AUTH;
  const series = `/studies/${ct.studyUid}/series/${ct.seriesUid}`;
  const stow = { ours: [] as Array<{ value: number; cpu: number }>, theirs: [] as Array<{ value: number; cpu: number }> };
  type Retrieval = { value: { seconds: number; bytes: number }; cpu: number };
  const wado = { ours: [] as Retrieval[], theirs: [] as Retrieval[] };
  // Each round's servers store into folders of their own, all removed after the last round: on ext4 without a
  // journal (as here), a new file's inode search skips, one by one, every inode freed in the last minute, so
  // deleting a round's 1000 files would slow the next round's file creation.
  const roundsDir = join(WORK, 'stow-rounds');
  await rm(roundsDir, { recursive: true, force: true });
  for (let round = 0; round < ROUNDS; round++) {
    // Orthanc's own default: fsync stored files, as our archive always does (the test config turns it off).
    const orthanc2 = await startOrthanc({ dir: join(roundsDir, `orthanc-${round}`), startTimeoutMs: 60_000, extraConfig: { SyncStorageArea: true } });
    const profile = round === 0 && process.env.BENCH_WEB_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_WEB_PROF] : [];
    const w2 = await serveAppliance(join(roundsDir, `appliance-${round}`), join(WORK, 'appliance.log'), profile);
    try {
      const ours = {
        stow: () => withCpu(w2.pid, () => benchStow(`${w2.dicomWebUrl}/studies`, ct.paths, auth)),
        wado: () => withCpu(w2.pid, () => timeGet(`${w2.dicomWebUrl}${series}`, auth)),
      };
      const theirs = {
        stow: () => withCpu(orthanc2.process.pid!, () => benchStow(`${orthanc2.dicomWebUrl}/studies`, ct.paths, {})),
        wado: () => withCpu(orthanc2.process.pid!, () => timeGet(`${orthanc2.dicomWebUrl}${series}`, {})),
      };
      const [first, second] = round % 2 === 0 ? (['ours', 'theirs'] as const) : (['theirs', 'ours'] as const);
      const servers = { ours, theirs };
      stow[first].push(await servers[first].stow());
      stow[second].push(await servers[second].stow());
      if (!ONLY.has('wado')) continue;
      await servers[first].wado(); // warm-up: JIT, page cache, connections
      await servers[second].wado();
      for (let r = 0; r < WADO_RUNS; r++) {
        wado[first].push(await servers[first].wado());
        wado[second].push(await servers[second].wado());
      }
    } finally {
      await w2.stop();
      await orthanc2.stop();
    }
  }
  // BENCH_KEEP=1: back-to-back runs that compare numbers keep the files (see above), and remove them when done.
  if (process.env.BENCH_KEEP === '1') await rename(roundsDir, `${roundsDir}-kept-${Date.now()}`);
  else await rm(roundsDir, { recursive: true, force: true });
  const oursStow = median(stow.ours, (x) => x.value).value;
  const theirsStow = median(stow.theirs, (x) => x.value).value;
  const cpu = (runs: Array<{ cpu: number }>) => `server CPU ${median(runs, (x) => x.cpu).cpu.toFixed(2)} s`;
  if (ONLY.has('stow')) {
    results.push({
      benchmark: `STOW-RS ${CT_COUNT} CT 512×512 (${(totalBytes / 1e6).toFixed(0)} MB, 5 requests at once; median of ${ROUNDS})`,
      'DICOM Edge': `${oursStow.toFixed(2)} s, ${(CT_COUNT / oursStow).toFixed(0)} instances/s, ${cpu(stow.ours)}`,
      Orthanc: `${theirsStow.toFixed(2)} s, ${(CT_COUNT / theirsStow).toFixed(0)} instances/s, ${cpu(stow.theirs)}`,
      'speed-up (p50)': `${(theirsStow / oursStow).toFixed(1)}×`,
    });
  }
  if (ONLY.has('wado')) {
    const oursWado = median(wado.ours, (x) => x.value.seconds).value;
    const theirsWado = median(wado.theirs, (x) => x.value.seconds).value;
    const mbps = (x: { seconds: number; bytes: number }) => `${(x.bytes / 1e6 / x.seconds).toFixed(0)} MB/s`;
    const ceiling = await clientCeiling(oursWado.bytes);
    results.push({
      benchmark: `WADO-RS series of ${CT_COUNT} CT, original bytes (median of ${wado.ours.length})`,
      'DICOM Edge': `${oursWado.seconds.toFixed(2)} s, ${mbps(oursWado)}, ${cpu(wado.ours)}`,
      Orthanc: `${theirsWado.seconds.toFixed(2)} s, ${mbps(theirsWado)}, ${cpu(wado.theirs)}`,
      'speed-up (p50)': `${(theirsWado.seconds / oursWado.seconds).toFixed(1)}×`,
    });
    results.push({
      benchmark: 'WADO client ceiling (same bytes from a trivial in-memory server)',
      'DICOM Edge': `${ceiling.seconds.toFixed(2)} s, ${mbps(ceiling)}`,
      Orthanc: '',
      'speed-up (p50)': '',
    });
  }
}
