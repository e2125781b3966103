/**
 * `npm run bench -- forward`: a 500-instance CT study (512×512×16) forwarded by STOW-RS to two destinations,
 * side by side in one run:
 *   - a fast STOW sink (a separate process: reads every part, answers a correct DICOM JSON, keeps nothing),
 *     which measures the sender's own overhead;
 *   - Orthanc (DICOMweb plugin).
 * Senders: the appliance's forward service (from its archive), Orthanc's own DICOMweb forwarding
 * (`POST /dicom-web/servers/{name}/stow`, default chunking), and one plain `curl` STOW of the same bytes.
 * Targets: ≥1.5× Orthanc's rate to the sink; to Orthanc within 10% of curl; flat memory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { routeFor } from '../main/core/appliance.js';
import { ForwardService } from '../main/core/forward/service.js';
import { settingsSchema } from '../main/core/contract/settings.js';
import { Archive } from '../main/core/store/archive.js';
import { makeInstance } from '../test/support/instance.js';
import { freePort, requireTool, startOrthanc, type OrthancPeer } from '../test/support/peers.js';
import { newUid } from '../test/support/uid.js';

const COUNT = 500;
const BOUNDARY = 'benchboundary0123456789';
/** Measured rounds per sender and destination, after one warm-up round; the table shows the median. */
const ROUNDS = 3;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

// ---- the sink, when this file runs as its own process -----------------------------------------

const HEAD_BYTES = 1024;

/** Reads a UI element of the file meta group (0002,xxxx explicit VR LE) from the start of a Part 10 file. */
function metaUid(head: Buffer, element: number): string | undefined {
  const tag = Buffer.from([0x02, 0x00, element, 0x00, 0x55, 0x49]); // (0002,element) 'UI'
  const at = head.indexOf(tag, 132);
  if (at < 0) return undefined;
  const length = head.readUInt16LE(at + 6);
  return head.toString('latin1', at + 8, at + 8 + length).replace(/[\0 ]+$/, '');
}

/**
 * A STOW-RS sink that costs as little as possible: it scans the body for part delimiters as it streams,
 * keeps only the first KiB of each part (the file meta group, with the SOP class and instance UIDs), and
 * answers a correct ReferencedSOPSequence. GET /count tells how many parts arrived in total.
 */
function startSink(port: number): void {
  let received = 0;
  const server = http.createServer(async (req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ received }));
      return;
    }
    const boundary = /boundary="?([^";]+)"?/i.exec(req.headers['content-type'] ?? '')?.[1];
    if (!boundary) {
      res.writeHead(400).end();
      return;
    }
    const delimiter = Buffer.from(`\r\n--${boundary}`);
    const heads: Buffer[][] = [];
    let headBytes = 0;
    const keep = (piece: Buffer) => {
      if (heads.length === 0 || headBytes >= HEAD_BYTES || piece.length === 0) return;
      const kept = Buffer.from(piece.subarray(0, HEAD_BYTES - headBytes));
      heads[heads.length - 1]!.push(kept);
      headBytes += kept.length;
    };
    // Only the last delimiter.length-1 bytes are carried between chunks, so the body is scanned, never copied.
    let carry: Buffer = Buffer.from('\r\n');
    for await (const chunk of req as AsyncIterable<Buffer>) {
      let data = chunk;
      let from = 0;
      if (carry.length > 0) {
        const joined = Buffer.concat([carry, chunk.subarray(0, delimiter.length)]);
        const at = joined.indexOf(delimiter);
        if (at >= 0 && at < carry.length) {
          keep(joined.subarray(0, at));
          heads.push([]);
          headBytes = 0;
          from = at + delimiter.length - carry.length;
        } else if (chunk.length < delimiter.length) {
          data = joined;
        } else {
          keep(carry);
        }
      }
      for (;;) {
        const at = data.indexOf(delimiter, from);
        const end = at < 0 ? Math.max(from, data.length - delimiter.length + 1) : at;
        keep(data.subarray(from, end));
        if (at < 0) {
          carry = Buffer.from(data.subarray(end));
          break;
        }
        heads.push([]);
        headBytes = 0;
        from = at + delimiter.length;
      }
    }
    const referenced: unknown[] = [];
    for (const pieces of heads.slice(0, -1)) {
      const head = Buffer.concat(pieces);
      const body = head.subarray(head.indexOf('\r\n\r\n') + 4);
      referenced.push({ '00081150': { vr: 'UI', Value: [metaUid(body, 0x02)] }, '00081155': { vr: 'UI', Value: [metaUid(body, 0x03)] } });
    }
    received += referenced.length;
    const answer = JSON.stringify({ '00081199': { vr: 'SQ', Value: referenced } });
    res.writeHead(200, { 'content-type': 'application/dicom+json', 'content-length': Buffer.byteLength(answer) }).end(answer);
  });
  server.keepAliveTimeout = 30_000;
  server.listen(port, '127.0.0.1', () => console.log('SINK READY'));
}

if (process.env.FORWARD_BENCH_SINK_PORT) startSink(Number(process.env.FORWARD_BENCH_SINK_PORT));

async function spawnSink(): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    env: { ...process.env, FORWARD_BENCH_SINK_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('SINK READY') && resolve());
    child.once('exit', (code) => reject(new Error(`STOW sink exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, process: child };
}

// ---- measurements -----------------------------------------------------------------------------

interface Row {
  sender: string;
  destination: string;
  seconds: number;
  peakRssMb?: number;
}

async function timed<T>(work: () => Promise<T>): Promise<{ seconds: number; peakRssMb: number; baseRssMb: number }> {
  const baseRss = process.memoryUsage().rss;
  let peak = baseRss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10);
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  return { seconds, peakRssMb: peak / 2 ** 20, baseRssMb: baseRss / 2 ** 20 };
}

/**
 * The appliance side: one archive holding the study (ingested once, outside any timing); each run starts a
 * forward service for one destination and ends when every instance is marked delivered. Between runs the
 * rows are queued again, as a user's "send again" would.
 */
class ApplianceSender {
  private constructor(private readonly archive: Archive, private readonly dataDir: string, private readonly sopInstanceUids: string[]) {}

  static async open(instances: Buffer[]): Promise<ApplianceSender> {
    const dataDir = await mkdtemp(join(tmpdir(), 'bench-forward-'));
    const settings = settingsSchema.parse({ destinations: [{ name: 'dest', baseUrl: 'http://127.0.0.1:1' }] });
    const logger = pino({ level: 'silent' });
    const { archive } = await Archive.open({ dataDir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger, route: routeFor(settings) });
    const uids: string[] = [];
    for (const bytes of instances) uids.push((await archive.ingest(Readable.from([bytes]), { callingAe: 'CT', peer: 'bench' })).header.sopInstanceUid);
    return new ApplianceSender(archive, dataDir, uids);
  }

  async forward(baseUrl: string): Promise<void> {
    this.archive.outboxWork.requeue('dest', this.sopInstanceUids, Date.now());
    const settings = settingsSchema.parse({ destinations: [{ name: 'dest', baseUrl }] });
    const service = new ForwardService({ archive: this.archive, settings, dataDir: this.dataDir, logger: pino({ level: 'silent' }), route: routeFor(settings) });
    let unsubscribe: (() => void) | undefined;
    try {
      const done = new Promise<void>((resolve) => {
        unsubscribe = this.archive.events.on('outbox-changed', (change) => {
          if (change.state === 'delivered' && service.status()[0]!.counts.delivered === this.sopInstanceUids.length) resolve();
        });
      });
      await service.start();
      await done;
    } finally {
      unsubscribe?.();
      await service.stop();
    }
  }

  async close(): Promise<void> {
    await this.archive.close();
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

async function json(url: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? JSON.parse(text) : undefined;
}

async function emptyOrthanc(orthanc: OrthancPeer): Promise<void> {
  for (const id of (await json(`${orthanc.httpUrl}/studies`)) as string[]) await json(`${orthanc.httpUrl}/studies/${id}`, { method: 'DELETE' });
}

async function orthancCount(orthanc: OrthancPeer): Promise<number> {
  return ((await json(`${orthanc.httpUrl}/statistics`)) as { CountInstances: number }).CountInstances;
}

function curlStow(bodyFile: string, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // -T streams the file (--data-binary @file would read all of it into memory before sending).
    const curl = spawn(requireTool('curl', 'curl'), ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST',
      '-H', `Content-Type: multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, '-H', 'Accept: application/dicom+json',
      '-H', 'Expect:', '-T', bodyFile, url]);
    let out = '';
    curl.stdout.on('data', (d) => (out += d));
    curl.on('exit', (code) => (code === 0 && out === '200' ? resolve() : reject(new Error(`curl exited ${code}, HTTP ${out}`))));
  });
}

async function writeMultipart(path: string, instances: Buffer[]): Promise<void> {
  const out = createWriteStream(path);
  for (const bytes of instances) {
    out.write(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
    out.write(bytes);
    out.write('\r\n');
  }
  out.end(`--${BOUNDARY}--\r\n`);
  await new Promise<void>((resolve, reject) => out.on('finish', resolve).on('error', reject));
}

// ---- the run ----------------------------------------------------------------------------------

export async function run(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'bench-forward-run-'));
  const studyUid = newUid();
  const seriesUid = newUid();
  const instances = Array.from({ length: COUNT }, (_, i) => makeInstance({ studyUid, seriesUid, instanceNumber: i + 1, rows: 512, columns: 512 }));
  const totalMb = instances.reduce((n, b) => n + b.length, 0) / 2 ** 20;
  const bodyFile = join(work, 'stow-body.bin');
  await writeMultipart(bodyFile, instances);
  console.log(`study: ${COUNT} CT instances 512x512x16, ${totalMb.toFixed(1)} MiB; median of ${ROUNDS} rounds after a warm-up round, senders in rotated order`);

  const sink = await spawnSink();
  const target = await startOrthanc({ dir: join(work, 'orthanc-target'), aet: 'TARGET' });
  const source = await startOrthanc({
    dir: join(work, 'orthanc-source'), aet: 'SOURCE',
    extraConfig: {
      DicomWeb: {
        Enable: true, Root: '/dicom-web/', EnableWado: false, Ssl: false,
        Servers: { sink: [`${sink.url}/`], orthanc: [`${target.dicomWebUrl}/`] },
      },
    },
  });
  const appliance = await ApplianceSender.open(instances);
  const rows: Row[] = [];
  let sinkRuns = 0;
  try {
    for (const bytes of instances) await json(`${source.httpUrl}/instances`, { method: 'POST', body: new Uint8Array(bytes) });
    const [sourceStudy] = (await json(`${source.httpUrl}/studies`)) as string[];

    const destinations = [
      { name: 'sink', url: sink.url, check: async () => ((await json(`${sink.url}/count`)) as { received: number }).received === COUNT * ++sinkRuns },
      { name: 'orthanc', url: target.dicomWebUrl, check: async () => (await orthancCount(target)) === COUNT },
    ];
    for (const destination of destinations) {
      const senders: Array<{ name: string; send: () => Promise<unknown> }> = [
        { name: 'DICOM Edge forward', send: () => appliance.forward(destination.url) },
        { name: 'Orthanc DICOMweb forward', send: () => json(`${source.httpUrl}/dicom-web/servers/${destination.name}/stow`, {
          method: 'POST', body: JSON.stringify({ Resources: [sourceStudy], Synchronous: true }),
        }) },
        { name: 'curl STOW (one request)', send: () => curlStow(bodyFile, `${destination.url}/studies/${studyUid}`) },
      ];
      const seconds = new Map<string, number[]>(senders.map((s) => [s.name, []]));
      let peakRssMb = 0;
      // Round 0 warms every side up (JIT, page cache, the sink's and Orthanc's first requests) and is not
      // counted; then each round runs the senders in a rotated order, so none always goes first.
      for (let round = 0; round <= ROUNDS; round++) {
        for (let k = 0; k < senders.length; k++) {
          const sender = senders[(k + round) % senders.length]!;
          const measured = await timed(sender.send);
          if (!(await destination.check())) throw new Error(`${sender.name} to ${destination.name}: not every instance arrived`);
          if (destination.name === 'orthanc') await emptyOrthanc(target);
          if (round === 0) continue;
          seconds.get(sender.name)!.push(measured.seconds);
          if (sender.name.startsWith('DICOM Edge')) peakRssMb = Math.max(peakRssMb, measured.peakRssMb - measured.baseRssMb);
        }
      }
      for (const sender of senders) {
        rows.push({ sender: sender.name, destination: destination.name, seconds: median(seconds.get(sender.name)!),
          ...(sender.name.startsWith('DICOM Edge') ? { peakRssMb } : {}) });
      }
    }
  } finally {
    await appliance.close();
    await source.stop();
    await target.stop();
    sink.process.kill('SIGTERM');
    await rm(work, { recursive: true, force: true });
  }

  const find = (sender: string, destination: string) => rows.find((r) => r.sender.startsWith(sender) && r.destination === destination)!;
  console.log('\n| sender | destination | seconds | instances/s | MiB/s | vs Orthanc | vs curl | peak RSS growth |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of rows) {
    const vsOrthanc = find('Orthanc', row.destination).seconds / row.seconds;
    const vsCurl = find('curl', row.destination).seconds / row.seconds;
    console.log(`| ${row.sender} | ${row.destination} | ${row.seconds.toFixed(2)} | ${(COUNT / row.seconds).toFixed(0)} | ${(totalMb / row.seconds).toFixed(0)} | ${vsOrthanc.toFixed(2)}× | ${vsCurl.toFixed(2)}× | ${row.peakRssMb === undefined ? '' : `${row.peakRssMb.toFixed(0)} MiB`} |`);
  }
  const toSink = find('Orthanc', 'sink').seconds / find('DICOM Edge', 'sink').seconds;
  const toOrthanc = find('DICOM Edge', 'orthanc').seconds / find('curl', 'orthanc').seconds;
  console.log(`\nto the sink: ${toSink.toFixed(2)}× Orthanc's rate (target ≥ 1.50×) — ${toSink >= 1.5 ? 'met' : 'NOT met'}`);
  const versusCurl = toOrthanc >= 1 ? `${((toOrthanc - 1) * 100).toFixed(1)}% slower than curl` : `${((1 - toOrthanc) * 100).toFixed(1)}% faster than curl`;
  console.log(`to Orthanc: ${versusCurl} (target: at most 10% slower) — ${toOrthanc <= 1.1 ? 'met' : 'NOT met'}`);
}
