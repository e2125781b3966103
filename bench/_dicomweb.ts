// The DICOMweb side of the benchmarks: the appliance served in its own process, and the plain clients that
// time QIDO, WADO and STOW against it and against Orthanc alike.
import { readFile } from 'node:fs/promises';
import { get as httpGet, request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { spawnDaemon, untilReadyOrExit } from '../test/support/daemon.js';
import { freePort } from '../test/support/net.js';
import { percentile } from './_measure.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const TOKEN = 'bench-token';
export const AUTH = { authorization: `Bearer ${TOKEN}` };

export interface ServedAppliance {
  base: string;
  dicomWebUrl: string;
  dimsePort: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * `dicom-edge serve` in its own process, as Orthanc runs in its own: the client does not share its thread.
 * nodeArgs go before the script (e.g. --cpu-prof); BENCH_APPLIANCE_NODE_ARGS adds more. BENCH_APPLIANCE_ROOT runs the
 * appliance of another checkout (e.g. a worktree of the code before a change, for cold-ab.ts's A/B).
 */
export async function serveAppliance(dataDir: string, logFile: string, nodeArgs: string[] = []): Promise<ServedAppliance> {
  const httpPort = await freePort();
  const dimsePort = await freePort();
  const args = [...nodeArgs, ...(process.env.BENCH_APPLIANCE_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [])];
  const root = process.env.BENCH_APPLIANCE_ROOT ?? ROOT;
  const daemon = spawnDaemon(process.execPath, [...args, '--import', 'tsx', join(root, 'main/core/cli.ts'), 'serve', '--data-dir', dataDir,
    '--http-port', String(httpPort), '--dimse-port', String(dimsePort), '--api-token', TOKEN], { cwd: root, logFile });
  const base = `http://127.0.0.1:${httpPort}`;
  await untilReadyOrExit(daemon, 'dicom-edge serve', (async () => {
    for (;;) {
      try {
        const response = await fetch(`${base}/api/ready`, { headers: AUTH });
        if (response.ok) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })());
  return { base, dicomWebUrl: `${base}/dicom-web`, dimsePort, pid: daemon.process.pid!, stop: () => daemon.stop() };
}

/** p50/p99 of `runs` sequential QIDO requests, after 5 that warm caches and connections. */
export async function timeQuery(url: string, headers: Record<string, string>, runs: number): Promise<{ p50: number; p99: number; results: number }> {
  const times: number[] = [];
  let results = 0;
  for (let run = 0; run < runs + 5; run++) {
    const t0 = performance.now();
    const response = await fetch(url, { headers: { accept: 'application/dicom+json', ...headers } });
    const text = await response.text();
    const elapsed = performance.now() - t0;
    if (response.status !== 200 && response.status !== 204) throw new Error(`${url}: ${response.status} ${text}`);
    results = text ? (JSON.parse(text) as unknown[]).length : 0;
    if (run >= 5) times.push(elapsed);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p99: percentile(times, 99), results };
}

/** GETs url and counts the body bytes; node:http 'data' events, the cheapest client Node has. */
export function getBytes(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers: { accept: 'multipart/related; type="application/dicom"; transfer-syntax=*', ...headers } }, (response) => {
      let bytes = 0;
      response.on('data', (c: Buffer) => (bytes += c.length));
      response.on('error', reject);
      response.on('end', () => (response.statusCode === 200 ? resolve(bytes) : reject(new Error(`${url}: ${response.statusCode}`))));
    }).on('error', reject);
  });
}

export async function timeGet(url: string, headers: Record<string, string>): Promise<{ seconds: number; bytes: number }> {
  const t0 = performance.now();
  const bytes = await getBytes(url, headers);
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

/** POSTs files as one multipart/related STOW-RS request, streamed from disk with a known length. */
export async function stowFiles(url: string, paths: string[], headers: Record<string, string>): Promise<number> {
  const boundary = 'bench-boundary-6b1d0c';
  const sizes = await Promise.all(paths.map(async (p) => (await readFile(p)).length));
  const head = (i: number) => Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const length = paths.reduce((n, _, i) => n + head(i).length + sizes[i]!, 0) + tail.length;
  async function* body() {
    for (let i = 0; i < paths.length; i++) {
      yield head(i);
      yield await readFile(paths[i]!);
    }
    yield tail;
  }
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, {
      method: 'POST',
      headers: { ...headers, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'content-length': length, accept: 'application/dicom+json' },
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('end', () => (response.statusCode === 200 ? resolve(response.statusCode) : reject(new Error(`${url}: ${response.statusCode} ${Buffer.concat(chunks).toString().slice(0, 300)}`))));
    });
    request.on('error', reject);
    Readable.from(body()).pipe(request);
  });
}
