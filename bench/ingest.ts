/**
 * `npm run bench -- ingest`: the same DIMSE workloads to this appliance, to DCMTK `storescp --fork`
 * (writing files) and to Orthanc (default durable storage), each sent by 8 and by 32 concurrent
 * `storescu` processes on loopback; then the appliance's peak RSS while it receives one 2 GB
 * multi-frame instance. Every receiver runs in its own process and starts empty for each run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { spawnDaemon, untilReadyOrExit } from '../test/support/daemon.js';
import { makeInstance } from '../test/support/instance.js';
import { freePort, requireTool, run as runCommand, startOrthanc, waitForPort } from '../test/support/peers.js';
import { newUid } from '../test/support/uid.js';
import { HUGE_BYTES, writeHugeInstance } from './_instances.js';
import { cpuSeconds, peakRssMb } from './_measure.js';
import { WORKLOADS, type Workload } from './_workloads.js';

const CONCURRENCY = [8, 32];

/**
 * For quick iteration, environment variables narrow the run (the full table runs without them):
 * BENCH_INGEST_WORKLOAD=CT|small, BENCH_INGEST_SENDERS=8|32, BENCH_INGEST_RECEIVERS=appliance,Orthanc,
 * BENCH_INGEST_HUGE=0 skips the 2 GB instance, BENCH_APPLIANCE_NODE_ARGS adds node flags to the
 * appliance (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"), BENCH_APPLIANCE_STDOUT=<file> keeps its stdout
 * (e.g. with "--trace-gc"), BENCH_KEEP=1 leaves the received files in place (see run() for why that
 * matters to back-to-back runs).
 */
const filter = {
  workload: process.env.BENCH_INGEST_WORKLOAD?.toLowerCase(),
  senders: process.env.BENCH_INGEST_SENDERS ? Number(process.env.BENCH_INGEST_SENDERS) : undefined,
  receivers: process.env.BENCH_INGEST_RECEIVERS?.split(',').map((name) => name.trim()),
  huge: process.env.BENCH_INGEST_HUGE !== '0',
  applianceNodeArgs: process.env.BENCH_APPLIANCE_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [],
};

interface Receiver {
  aet: string;
  port: number;
  /** The receiving process (for RSS); undefined for forking receivers. */
  pid?: number;
  stop(): Promise<void>;
}

type ReceiverName = 'appliance' | 'storescp --fork' | 'Orthanc';

async function startAppliance(dir: string): Promise<Receiver> {
  // Room for 32 concurrent senders (the default limit is 16).
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'settings.json'), JSON.stringify({ dimse: { maxAssociations: 64 } }));
  const port = await freePort();
  const httpPort = await freePort();
  const child = spawn(process.execPath, [...filter.applianceNodeArgs, '--import', 'tsx', 'main/core/cli.ts', 'serve', '--data-dir', dir,
    '--dimse-port', String(port), '--http-port', String(httpPort)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  if (process.env.BENCH_APPLIANCE_STDOUT) child.stdout!.pipe(createWriteStream(process.env.BENCH_APPLIANCE_STDOUT));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = once(child, 'exit');
  await Promise.race([
    waitForPort(port, '127.0.0.1', 30_000),
    exited.then(() => {
      throw new Error(`the appliance exited before listening:\n${output}`);
    }),
  ]);
  return { aet: 'DICOMEDGE', port, pid: child.pid, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function startStorescpFork(dir: string): Promise<Receiver> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const daemon = spawnDaemon(requireTool('storescp', 'dcmtk'), ['--fork', '-od', dir, '+xa', '-aet', 'STORESCP', String(port)]);
  await untilReadyOrExit(daemon, 'storescp', waitForPort(port, '127.0.0.1', 10_000));
  return { aet: 'STORESCP', port, stop: () => daemon.stop() };
}

async function startOrthancReceiver(dir: string): Promise<Receiver> {
  // Orthanc's own default is SyncStorageArea: true; the test helper turns it off, the benchmark turns it back on.
  const orthanc = await startOrthanc({ dir, aet: 'ORTHANC', extraConfig: { SyncStorageArea: true, DicomThreadsCount: 32 } });
  return { aet: 'ORTHANC', port: orthanc.dicomPort, pid: orthanc.process.pid, stop: () => orthanc.stop() };
}

const RECEIVERS: Record<ReceiverName, (dir: string) => Promise<Receiver>> = {
  appliance: startAppliance,
  'storescp --fork': startStorescpFork,
  Orthanc: startOrthancReceiver,
};

async function writeWorkload(dir: string, workload: Workload): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const studyUid = newUid();
  const seriesUid = newUid();
  const paths: string[] = [];
  for (let i = 0; i < workload.count; i++) {
    const path = join(dir, `${i}.dcm`);
    await writeFile(path, makeInstance({ studyUid, seriesUid, instanceNumber: i + 1, rows: workload.rows, columns: workload.columns }));
    paths.push(path);
  }
  return paths;
}

/** Sends `files` split over `senders` concurrent storescu processes; resolves with the seconds taken. */
async function send(receiver: Receiver, files: string[], senders: number): Promise<number> {
  const storescu = requireTool('storescu', 'dcmtk');
  const slices = Array.from({ length: senders }, (_, n) => files.filter((_, i) => i % senders === n)).filter((s) => s.length > 0);
  const started = performance.now();
  const results = await Promise.all(slices.map((slice) =>
    runCommand(storescu, ['-aec', receiver.aet, '127.0.0.1', String(receiver.port), ...slice], { timeoutMs: 300_000 })));
  const seconds = (performance.now() - started) / 1000;
  const failed = results.filter((r) => r.code !== 0);
  if (failed.length > 0) throw new Error(`${failed.length} storescu processes failed: ${failed[0]!.stderr.slice(0, 500)}`);
  return seconds;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

export async function run(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'dicom-edge-bench-ingest-'));
  try {
    const rows: string[][] = [['workload', 'senders', 'receiver', 'seconds', 'inst/s', 'x Orthanc', 'x storescp']];
    const receiverNames = (Object.keys(RECEIVERS) as ReceiverName[]).filter((name) => !filter.receivers || filter.receivers.includes(name));
    for (const workload of WORKLOADS.filter((w) => !filter.workload || w.name.toLowerCase().startsWith(filter.workload))) {
      const files = await writeWorkload(join(root, 'in', workload.name.replace(/\W+/g, '-')), workload);
      for (const senders of CONCURRENCY.filter((n) => !filter.senders || n === filter.senders)) {
        const seconds: Partial<Record<ReceiverName, number>> = {};
        for (const name of receiverNames) {
          const dir = join(root, 'out', `${name.replace(/\W+/g, '-')}-${workload.count}-${senders}`);
          const receiver = await RECEIVERS[name](dir);
          try {
            const cpuBefore = receiver.pid ? await cpuSeconds(receiver.pid) : 0;
            const mainBefore = receiver.pid ? await cpuSeconds(receiver.pid, receiver.pid) : 0;
            seconds[name] = await send(receiver, files, senders);
            // The main thread's share tells event-loop work from the threadpool's (fs calls, fsync) and other threads'.
            const cpu = receiver.pid
              ? ` (receiver CPU ${((await cpuSeconds(receiver.pid)) - cpuBefore).toFixed(2)} s, main thread ` +
                `${((await cpuSeconds(receiver.pid, receiver.pid)) - mainBefore).toFixed(2)} s)`
              : '';
            console.log(`  ${workload.name}, ${senders} senders, ${name}: ${seconds[name]!.toFixed(2)} s${cpu}`);
          } finally {
            // The output stays until the end of the run: on ext4 without a journal (as here), a new file's
            // inode search skips, one by one, every inode freed in the last minute, so deleting one receiver's
            // thousands of files would slow the next receiver's file creation.
            await receiver.stop();
          }
        }
        const ratio = (other: number | undefined, s: number) => (other === undefined ? '-' : (other / s).toFixed(2));
        for (const name of receiverNames) {
          const s = seconds[name]!;
          rows.push([workload.name, String(senders), name, s.toFixed(2), (workload.count / s).toFixed(0),
            ratio(seconds.Orthanc, s), ratio(seconds['storescp --fork'], s)]);
        }
      }
    }
    console.log(table(rows));
    console.log('(x Orthanc / x storescp: how many times the row\'s receiver is faster; > 1 is faster)');
    if (!filter.huge) return;

    const hugePath = join(root, 'huge.dcm');
    await writeHugeInstance(hugePath);
    const dir = join(root, 'out', 'huge');
    const appliance = await startAppliance(dir);
    try {
      const before = await peakRssMb(appliance.pid!);
      const seconds = await send(appliance, [hugePath], 1);
      const peak = await peakRssMb(appliance.pid!);
      console.log(`\nappliance receiving one ${(HUGE_BYTES / 1024 ** 3).toFixed(0)} GB multi-frame instance: ${seconds.toFixed(1)} s, ` +
        `peak RSS ${peak.toFixed(0)} MB (${before.toFixed(0)} MB after start-up; target <= 250 MB)`);
    } finally {
      await appliance.stop();
    }
  } finally {
    // Removing thousands of files slows the next minute's file creation (see the output folders above):
    // back-to-back runs that compare numbers should keep them, and remove them when done.
    if (process.env.BENCH_KEEP === '1') console.log(`kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  }
}
