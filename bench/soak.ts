/**
 * `npm run bench -- soak`: mixed load on one appliance process for SOAK_MINUTES (30):
 *   - DIMSE ingest from 8 storescu senders, each sending batches of new instances in a loop, together at
 *     SOAK_INGEST_PER_SECOND (24, about 86,000 instances an hour; 0 for as fast as they can);
 *   - STOW-RS of small studies, QIDO-RS and WADO-RS readers;
 *   - forwarding to Orthanc (DICOMweb) through a TCP gate that is down every other SOAK_FLAP_SECONDS (120).
 * Every SOAK_SAMPLE_SECONDS (30) it samples the appliance's RSS, open file descriptors, event-loop delay
 * (a probe loaded into it with --import) and outbox depth. After the load stops with the gate up, it times the
 * drain of the queue and checks that every acknowledged instance reached Orthanc.
 * Targets: RSS and descriptors within 10% of their level at minute 5; nothing lost; drained within 2 minutes
 * of the last flap.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeInstance } from '../test/support/instance.js';
import { freePort, requireTool, startOrthanc } from '../test/support/peers.js';
import { newUid } from '../test/support/uid.js';
import { AUTH, getBytes, serveAppliance, stowFiles } from './_dicomweb.js';
import { loadAverage } from './_measure.js';

const MINUTES = Number(process.env.SOAK_MINUTES ?? 30);
const FLAP_SECONDS = Number(process.env.SOAK_FLAP_SECONDS ?? 120);
const SAMPLE_SECONDS = Number(process.env.SOAK_SAMPLE_SECONDS ?? 30);
// The senders' combined rate, in instances per second (0: as fast as they can). With the upstream down half of
// the time, the forwarder must send twice as fast as the modalities store for the queue to stay bounded.
const INGEST_PER_SECOND = Number(process.env.SOAK_INGEST_PER_SECOND ?? 24);
const SENDERS = 8;
const BATCH = 10;
const STOW_BATCH = 5;
const PROBE = fileURLToPath(new URL('./_event-loop-probe.mjs', import.meta.url));

interface Acknowledged { studyUid: string; seriesUid: string; sopInstanceUid: string }

/** A TCP gate in front of the upstream: while down it refuses new connections and cuts the open ones. */
class FlappingGate {
  private up = true;
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  lastUpAt = Date.now();
  flaps = 0;

  async start(target: number): Promise<number> {
    this.server = createServer((client) => {
      if (!this.up) return client.destroy();
      const upstream = connect(target, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    const port = await freePort();
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    return port;
  }

  set(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    this.flaps++;
    if (up) this.lastUpAt = Date.now();
    else for (const socket of this.sockets) socket.destroy();
  }

  get isUp(): boolean {
    return this.up;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}

function exitCodeOf(command: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'ignore' });
    child.on('exit', (code) => resolve(code ?? 1));
    child.on('error', () => resolve(1));
  });
}

/** Writes `count` new instances of one new study into `dir`; returns their paths and UIDs. */
async function writeBatch(dir: string, count: number, prefix: string): Promise<{ paths: string[]; uids: Acknowledged[] }> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const studyUid = newUid();
  const seriesUid = newUid();
  const paths: string[] = [];
  const uids: Acknowledged[] = [];
  for (let n = 0; n < count; n++) {
    const sopInstanceUid = newUid();
    const path = join(dir, `${n}.dcm`);
    await writeFile(path, makeInstance({ studyUid, seriesUid, sopInstanceUid, patientId: `${prefix}-${studyUid.slice(-6)}`, instanceNumber: n + 1, rows: 64, columns: 64 }));
    paths.push(path);
    uids.push({ studyUid, seriesUid, sopInstanceUid });
  }
  return { paths, uids };
}

async function processSample(pid: number): Promise<{ rssMb: number; fds: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const rssMb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
  const fds = (await readdir(`/proc/${pid}/fd`)).length;
  return { rssMb, fds };
}

interface OutboxCounts { pending: number; sending: number; delivered: number; failed: number }

async function outbox(base: string): Promise<OutboxCounts> {
  const summary = (await (await fetch(`${base}/api/outbox`, { headers: AUTH })).json()) as { totals: Record<string, { count: number }> };
  const count = (state: string) => summary.totals[state]?.count ?? 0;
  return { pending: count('pending'), sending: count('sending'), delivered: count('delivered'), failed: count('failed') };
}

/** Every SOPInstanceUID Orthanc holds, read in pages. */
async function orthancInstanceUids(httpUrl: string): Promise<Set<string>> {
  const uids = new Set<string>();
  for (let since = 0; ; since += 5000) {
    const response = await fetch(`${httpUrl}/tools/find`, {
      method: 'POST',
      body: JSON.stringify({ Level: 'Instance', Query: {}, Expand: true, Since: since, Limit: 5000 }),
    });
    const page = (await response.json()) as Array<{ MainDicomTags: { SOPInstanceUID: string } }>;
    for (const instance of page) uids.add(instance.MainDicomTags.SOPInstanceUID);
    if (page.length < 5000) return uids;
  }
}

const fmt = (value: number, digits = 1) => value.toFixed(digits);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

export async function run(): Promise<void> {
  const storescu = requireTool('storescu', 'dcmtk');
  const root = await mkdtemp(join(tmpdir(), 'dicom-edge-bench-soak-'));
  const gate = new FlappingGate();
  const orthanc = await startOrthanc({ dir: join(root, 'orthanc'), aet: 'ORTHANC' });
  const gatePort = await gate.start(orthanc.httpPort);
  const dataDir = join(root, 'appliance');
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
    dimse: { maxAssociations: 64 },
    destinations: [{ name: 'orthanc', baseUrl: `http://127.0.0.1:${gatePort}/dicom-web`, requestTimeoutMs: 30_000 }],
  }));
  const eldFile = join(root, 'event-loop.jsonl');
  process.env.SOAK_ELD_FILE = eldFile;
  process.env.SOAK_ELD_INTERVAL_MS = String(SAMPLE_SECONDS * 1000);
  const appliance = await serveAppliance(dataDir, join(root, 'appliance.log'), ['--import', PROBE]);
  const pace = INGEST_PER_SECOND > 0 ? `${INGEST_PER_SECOND} instances/s from the senders` : 'senders unpaced';
  console.log(`soak: ${MINUTES} min, ${pace}, STOW of ${STOW_BATCH} a second, flap every ${FLAP_SECONDS} s, samples every ${SAMPLE_SECONDS} s; load ${await loadAverage()}`);

  const acknowledged: Acknowledged[] = [];
  const errors = { storescu: 0, stow: 0, qido: 0, wado: 0 };
  const reads = { qido: 0, wado: 0 };
  const started = Date.now();
  const endAt = started + MINUTES * 60_000;
  const running = () => Date.now() < endAt;

  const senders = Array.from({ length: SENDERS }, async (_, sender) => {
    const roundMs = INGEST_PER_SECOND > 0 ? (BATCH * SENDERS * 1000) / INGEST_PER_SECOND : 0;
    for (let round = 0; running(); round++) {
      const batch = await writeBatch(join(root, 'send', String(sender)), BATCH, `SOAK${sender}`);
      const code = await exitCodeOf(storescu, ['-aec', 'DICOMEDGE', '127.0.0.1', String(appliance.dimsePort), ...batch.paths]);
      if (code === 0) acknowledged.push(...batch.uids);
      else errors.storescu++;
      const due = started + (round + 1) * roundMs;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
    }
  });
  const stow = (async () => {
    while (running()) {
      const batch = await writeBatch(join(root, 'stow'), STOW_BATCH, 'STOW');
      try {
        await stowFiles(`${appliance.dicomWebUrl}/studies`, batch.paths, AUTH);
        acknowledged.push(...batch.uids);
      } catch {
        errors.stow++;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  const qido = (async () => {
    while (running()) {
      try {
        const response = await fetch(`${appliance.dicomWebUrl}/studies?limit=50&includecloud=false`, { headers: { ...AUTH, accept: 'application/dicom+json' } });
        await response.arrayBuffer();
        if (response.ok) reads.qido++;
        else errors.qido++;
      } catch {
        errors.qido++;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  const wado = (async () => {
    while (running()) {
      const target = acknowledged[Math.floor(Math.random() * acknowledged.length)];
      if (target) {
        try {
          await getBytes(`${appliance.dicomWebUrl}/studies/${target.studyUid}/series/${target.seriesUid}/instances/${target.sopInstanceUid}`, AUTH);
          reads.wado++;
        } catch {
          errors.wado++;
        }
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  const flapper = setInterval(() => gate.set(!gate.isUp), FLAP_SECONDS * 1000);

  const samples: Array<{ minute: number; rssMb: number; fds: number; depth: number; delivered: number; acked: number; upstream: string }> = [];
  const sampler = setInterval(() => {
    void (async () => {
      const [proc, counts] = await Promise.all([processSample(appliance.pid), outbox(appliance.base)]);
      samples.push({ minute: (Date.now() - started) / 60_000, ...proc, depth: counts.pending + counts.sending, delivered: counts.delivered, acked: acknowledged.length, upstream: gate.isUp ? 'up' : 'down' });
    })().catch(() => undefined);
  }, SAMPLE_SECONDS * 1000);

  await Promise.all([...senders, stow, qido, wado]);
  clearInterval(flapper);
  clearInterval(sampler);
  gate.set(true);
  const lastFlap = gate.lastUpAt;
  let drained: OutboxCounts;
  for (;;) {
    drained = await outbox(appliance.base);
    if (drained.pending + drained.sending === 0) break;
    if (Date.now() - lastFlap > 10 * 60_000) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const drainSeconds = (Date.now() - lastFlap) / 1000;
  const inOrthanc = await orthancInstanceUids(orthanc.httpUrl);
  const lost = acknowledged.filter((a) => !inOrthanc.has(a.sopInstanceUid));

  const eventLoop = (await readFile(eldFile, 'utf8').catch(() => '')).split('\n').filter(Boolean)
    .map((line) => JSON.parse(line) as { at: number; p99: number; max: number });
  const eventLoopAt = (minute: number) => eventLoop.find((e) => (e.at - started) / 60_000 >= minute - SAMPLE_SECONDS / 120);

  const rows = [['minute', 'RSS MB', 'fds', 'loop p99 ms', 'loop max ms', 'outbox depth', 'delivered', 'acknowledged', 'upstream']];
  for (const s of samples) {
    const loop = eventLoopAt(s.minute);
    rows.push([fmt(s.minute), fmt(s.rssMb, 0), String(s.fds), loop ? fmt(loop.p99) : '-', loop ? fmt(loop.max) : '-', String(s.depth), String(s.delivered), String(s.acked), s.upstream]);
  }
  console.log(table(rows));

  // The baseline: minute 5 of a 30-minute run; a shorter run takes the sample a sixth of the way in.
  const baselineMinute = Math.min(5, MINUTES / 6);
  const baseline = samples.find((s) => s.minute >= baselineMinute);
  const after = samples.filter((s) => baseline && s.minute > baseline.minute);
  const growth = (pick: (s: (typeof samples)[number]) => number) =>
    baseline && after.length ? (Math.max(...after.map(pick)) - pick(baseline)) / pick(baseline) * 100 : NaN;
  // Open descriptors swing with the connections open at the instant of a sample (senders, forwarding, readers),
  // so a leak shows as a rising median: compare the median of the window after the baseline with the last one.
  const windowMinutes = Math.max(baselineMinute, SAMPLE_SECONDS / 60);
  const median = (values: number[]) => values.length ? [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]! : NaN;
  const fdsIn = (from: number, to: number) => samples.filter((s) => s.minute >= from && s.minute < to).map((s) => s.fds);
  const lastMinute = samples.length ? samples[samples.length - 1]!.minute : 0;
  const firstFds = median(fdsIn(baselineMinute, baselineMinute + windowMinutes));
  const lastFds = median(fdsIn(lastMinute - windowMinutes, lastMinute + 1));
  const fdMedianGrowth = (lastFds - firstFds) / firstFds * 100;
  const loopP99 = eventLoop.map((e) => e.p99).sort((a, b) => a - b);
  console.log(table([
    ['measure', 'value', 'target'],
    ['RSS growth after minute ' + fmt(baselineMinute), `${fmt(growth((s) => s.rssMb))} %`, '≤ 10 %'],
    [`fd median, minutes ${fmt(baselineMinute)}–${fmt(baselineMinute + windowMinutes)} → last ${fmt(windowMinutes)}`, `${fmt(firstFds, 0)} → ${fmt(lastFds, 0)} (${fmt(fdMedianGrowth)} %)`, '≤ 10 %'],
    ['fd highest sample after minute ' + fmt(baselineMinute), `${Math.max(...after.map((s) => s.fds))} (${fmt(growth((s) => s.fds))} % over minute ${fmt(baselineMinute)})`, 'reported'],
    ['event-loop p99, worst interval', loopP99.length ? `${fmt(loopP99[loopP99.length - 1]!)} ms` : '-', 'reported'],
    ['acknowledged instances', String(acknowledged.length), '-'],
    ['lost (acknowledged, not in Orthanc)', String(lost.length), '0'],
    ['failed outbox rows', String(drained!.failed), '0'],
    ['queue drained after the last flap', drained!.pending + drained!.sending === 0 ? `${fmt(drainSeconds, 0)} s` : `not in ${fmt(drainSeconds, 0)} s`, '≤ 120 s'],
    ['flaps', String(gate.flaps), '-'],
    ['errors storescu/stow/qido/wado', `${errors.storescu}/${errors.stow}/${errors.qido}/${errors.wado}`, '0'],
    ['reads qido/wado', `${reads.qido}/${reads.wado}`, '-'],
  ]));
  console.log(`load at the end: ${await loadAverage()}`);

  await appliance.stop();
  await gate.stop();
  await orthanc.stop();
  await rm(root, { recursive: true, force: true });
}
