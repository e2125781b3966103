// The DICOMweb side of the benchmarks: the appliance served in its own process, and the plain clients that
// time QIDO, WADO and STOW against it and against Orthanc alike.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { get as httpGet, request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { spawnDaemon, untilReadyOrExit } from '../test/support/daemon.js';
import { freePort } from '../test/support/net.js';
import { runOk } from '../test/support/process.js';
import { APPLIANCE_NODE_FLAGS } from '../scripts/node-flags.mjs';
import { percentile } from './_measure.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const TOKEN = 'bench-token';
export const AUTH = { authorization: `Bearer ${TOKEN}` };
/** What a WADO-RS read asks for: every instance as it is stored. */
export const MULTIPART_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*';

export interface ServedAppliance {
  base: string;
  dicomWebUrl: string;
  dimsePort: number;
  pid: number;
  stop(): Promise<void>;
}

/** The time limit of the archive's part of a federated query, in the appliances freshArchiveDataDir sets up. */
export const FEDERATION_TIMEOUT_MS = 3000;

/**
 * An empty data dir whose settings make `archiveUrl` the one destination, marked as the clinic's archive, with
 * federated queries and no change feed; `more` adds or replaces top-level settings.
 */
export async function freshArchiveDataDir(dataDir: string, archiveUrl: string, more: Record<string, unknown> = {}): Promise<void> {
  await rm(dataDir, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true });
  await writeFile(join(dataDir, 'settings.json'), JSON.stringify({
    storage: { minFreeBytes: 0 },
    destinations: [{ name: 'archive', baseUrl: archiveUrl, archive: true, auth: { kind: 'none' } }],
    cloud: { federation: { enabled: true, timeoutMs: FEDERATION_TIMEOUT_MS }, changeFeed: { enabled: false } },
    ...more,
  }, null, 2));
}

let coreBuild: Promise<string> | undefined;

/**
 * The core compiled to JavaScript as production runs it (bin/dicom-edge.js and the server package run
 * dist/main/core, not tsx): built once per bench process, so it is the source as it is now. Returns cli.js.
 */
export function compiledCore(): Promise<string> {
  coreBuild ??= (async () => {
    await runOk(process.execPath, [join(ROOT, 'scripts/build.mjs'), '--core'], { cwd: ROOT, timeoutMs: 300_000 });
    return join(ROOT, 'dist/main/core/cli.js');
  })();
  return coreBuild;
}

/**
 * `dicom-edge serve` in its own process, as Orthanc runs in its own: the client does not share its thread.
 * nodeArgs go before the script (e.g. --cpu-prof); BENCH_APPLIANCE_NODE_ARGS adds more. `compiled`: the
 * compiled core (compiledCore) with the Node flags the installed appliance runs with (scripts/node-flags.mjs),
 * instead of the TypeScript source through tsx, whose loader thread and transpiled sources it does not carry.
 * BENCH_APPLIANCE_ROOT runs the TypeScript appliance of another checkout (e.g. a worktree of the code before a
 * change, for cold-ab.ts's A/B).
 */
export async function serveAppliance(dataDir: string, logFile: string, nodeArgs: string[] = [], options: { compiled?: boolean } = {}): Promise<ServedAppliance> {
  const httpPort = await freePort();
  const dimsePort = await freePort();
  const args = [...nodeArgs, ...(process.env.BENCH_APPLIANCE_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? [])];
  const root = process.env.BENCH_APPLIANCE_ROOT ?? ROOT;
  if (options.compiled && root !== ROOT) throw new Error('BENCH_APPLIANCE_ROOT runs the TypeScript source; it cannot be combined with the compiled core');
  const entry = options.compiled ? [...APPLIANCE_NODE_FLAGS, await compiledCore()] : ['--import', 'tsx', join(root, 'main/core/cli.ts')];
  const daemon = spawnDaemon(process.execPath, [...args, ...entry, 'serve', '--data-dir', dataDir,
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
    httpGet(url, { headers: { accept: MULTIPART_DICOM, ...headers } }, (response) => {
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

/**
 * GETs url with curl (into /dev/null) and returns curl's own count of the body bytes and its total time: a
 * client in C whose time is the server's, for reads where a Node client would be the slower end.
 */
export function curlBytes(url: string, headers: Record<string, string>): Promise<{ seconds: number; bytes: number }> {
  const all = { accept: MULTIPART_DICOM, ...headers };
  const args = ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', ...Object.entries(all).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
  return new Promise((resolve, reject) => {
    execFile('curl', args, (error, stdout, stderr) => {
      if (error) return reject(new Error(`curl ${url}: ${stderr || error.message}`));
      const [status, bytes, seconds] = stdout.trim().split(' ');
      if (status !== '200') return reject(new Error(`${url}: ${status}`));
      resolve({ seconds: Number(seconds), bytes: Number(bytes) });
    });
  });
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
