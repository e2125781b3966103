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
import { settingsSchema } from '../main/core/settings/schema.js';
import { Archive } from '../main/core/store/archive.js';
import { makeInstance } from '../test/support/instance.js';
import { freePort, requireTool, startOrthanc, type OrthancPeer } from '../test/support/peers.js';
import { newUid } from '../test/support/uid.js';

const COUNT = 500;
const BOUNDARY = 'benchboundary0123456789';

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
    let carry: Buffer = Buffer.from('\r\n');
    for await (const chunk of req as AsyncIterable<Buffer>) {
      const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      let from = 0;
      for (;;) {
        const at = data.indexOf(delimiter, from);
        const end = at < 0 ? Math.max(from, data.length - delimiter.length) : at;
        if (heads.length > 0 && headBytes < HEAD_BYTES && end > from) {
          const piece = data.subarray(from, Math.min(end, from + HEAD_BYTES - headBytes));
          heads[heads.length - 1]!.push(Buffer.from(piece));
          headBytes += piece.length;
        }
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

async function forwardFromAppliance(instances: Buffer[], baseUrl: string): Promise<{ seconds: number; peakRssMb: number; baseRssMb: number }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'bench-forward-'));
  const settings = settingsSchema.parse({ destinations: [{ name: 'dest', baseUrl }] });
  const logger = pino({ level: 'silent' });
  const { archive } = await Archive.open({ dataDir, limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false }, logger, route: routeFor(settings) });
  for (const bytes of instances) await archive.ingest(Readable.from([bytes]), { callingAe: 'CT', peer: 'bench' });
  const service = new ForwardService({ archive, settings, dataDir, logger, route: routeFor(settings) });
  try {
    return await timed(async () => {
      const done = new Promise<void>((resolve) => {
        const check = () => {
          if (service.status()[0]!.counts.delivered === instances.length) resolve();
        };
        archive.events.on('outbox-changed', check);
      });
      await service.start();
      await done;
      const s = service.status()[0]!;
      if (s.counts.delivered !== instances.length) throw new Error(`appliance delivered ${s.counts.delivered} of ${instances.length}`);
    });
  } finally {
    await service.stop();
    await archive.close();
    await rm(dataDir, { recursive: true, force: true });
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
    const curl = spawn(requireTool('curl', 'curl'), ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST',
      '-H', `Content-Type: multipart/related; type="application/dicom"; boundary=${BOUNDARY}`, '-H', 'Accept: application/dicom+json',
      '--data-binary', `@${bodyFile}`, url]);
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
  console.log(`study: ${COUNT} CT instances 512x512x16, ${totalMb.toFixed(1)} MiB`);

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
      const verify = async (sender: string) => {
        if (!(await destination.check())) throw new Error(`${sender} to ${destination.name}: not every instance arrived`);
        if (destination.name === 'orthanc') await emptyOrthanc(target);
      };
      const ours = await forwardFromAppliance(instances, destination.url);
      await verify('appliance');
      rows.push({ sender: 'DICOM Edge forward', destination: destination.name, seconds: ours.seconds, peakRssMb: ours.peakRssMb - ours.baseRssMb });

      const orthanc = await timed(() => json(`${source.httpUrl}/dicom-web/servers/${destination.name}/stow`, {
        method: 'POST', body: JSON.stringify({ Resources: [sourceStudy], Synchronous: true }),
      }));
      await verify('Orthanc');
      rows.push({ sender: 'Orthanc DICOMweb forward', destination: destination.name, seconds: orthanc.seconds });

      const curl = await timed(() => curlStow(bodyFile, `${destination.url}/studies/${studyUid}`));
      await verify('curl');
      rows.push({ sender: 'curl STOW (one request)', destination: destination.name, seconds: curl.seconds });
    }
  } finally {
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
  console.log(`to Orthanc: ${((toOrthanc - 1) * 100).toFixed(1)}% slower than curl (target ≤ 10%) — ${toOrthanc <= 1.1 ? 'met' : 'NOT met'}`);
}
