// What a viewer asks of the appliance (issue 14's benchmark table), beside Orthanc in the same run:
//  - /metadata of the 500-instance CT series, p50;
//  - cold thumbnails of that series (every instance), 8 at once, and again from the thumbnail cache;
//  - C-STORE acknowledgement latency p99 while 8 cold thumbnail requests run, against the same sending alone;
//  - WADO-RS of a JPEG 2000 series asked for as Explicit VR Little Endian (transcoded), instances per second.
// BENCH_WEB_CT (500), BENCH_WEB_J2K (100), BENCH_WEB_METADATA_RUNS (30), BENCH_WEB_CSTORE (200 per pass)
// make it smaller for a quick check.
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { join } from 'node:path';
import { encodeJpeg2000Lossless } from '../test/support/jpeg2000.js';
import { acceptUserInformation, associateRq, cStoreCommand, dataSetOf, pDataTf, PduType, releaseRq, UlConnection } from '../test/support/dicom-ul.js';
import { makeInstance } from '../test/support/instance.js';
import { startOrthanc, type OrthancPeer } from '../test/support/orthanc.js';
import { AUTH, serveAppliance, stowFiles, type ServedAppliance } from './_dicomweb.js';
import { ctSeriesFiles } from './_instances.js';
import { median, percentile, pool } from './_measure.js';

const CT_COUNT = Number(process.env.BENCH_WEB_CT ?? 500);
const J2K_COUNT = Number(process.env.BENCH_WEB_J2K ?? 100);
const METADATA_RUNS = Number(process.env.BENCH_WEB_METADATA_RUNS ?? 30);
/** Orthanc reads every file for /metadata: fewer runs keep the bench short, and its p50 is steady. */
const ORTHANC_METADATA_RUNS = Math.min(METADATA_RUNS, 7);
const CSTORE_PER_PASS = Number(process.env.BENCH_WEB_CSTORE ?? 200);
const THUMBNAIL_CLIENTS = 8;
const TRANSCODE_RUNS = 3;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const J2K_LOSSLESS = '1.2.840.10008.1.2.4.90';

/** One row of the table: what is measured, both servers' numbers, their ratio and the issue's target. */
export interface TableRow {
  measure: string;
  appliance: string;
  reference: string;
  ratio: string;
  target: string;
}

const ms = (v: number) => `${v.toFixed(1)} ms`;
const rate = (n: number, seconds: number) => `${(n / seconds).toFixed(1)} instances/s`;

/** GETs url and returns the body (small answers only: metadata JSON, images). */
function getBody(url: string, headers: Record<string, string>): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (c: Buffer) => chunks.push(c));
      response.on('error', reject);
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

/** Times of `runs` sequential GETs, after 2 that warm caches and connections, in ms, ascending. */
async function timeRuns(url: string, headers: Record<string, string>, runs: number): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < runs + 2; run++) {
    const t0 = performance.now();
    const { status, body } = await getBody(url, headers);
    const elapsed = performance.now() - t0;
    if (status !== 200) throw new Error(`${url}: ${status} ${body.toString().slice(0, 300)}`);
    if (run >= 2) times.push(elapsed);
  }
  return times.sort((a, b) => a - b);
}

/** The J2K series: CT images 512×512 re-encoded as JPEG 2000 lossless (made once, kept under dir). */
async function j2kSeriesFiles(dir: string, count: number, uidRoot: string): Promise<{ paths: string[]; studyUid: string; seriesUid: string }> {
  const studyUid = `${uidRoot}.1`;
  const seriesUid = `${uidRoot}.2`;
  await mkdir(dir, { recursive: true });
  if ((await readdir(dir)).filter((n) => n.endsWith('.dcm')).length !== count) {
    for (let i = 0; i < count; i++) {
      const native = makeInstance({ studyUid, seriesUid, sopInstanceUid: `${uidRoot}.3.${i}`, instanceNumber: i + 1, rows: 512, columns: 512,
        patientName: 'Bench^J2K', patientId: 'BENCHJ2K', frameOfReferenceUid: `${uidRoot}.4` });
      await writeFile(join(dir, `${String(i).padStart(4, '0')}.dcm`), await encodeJpeg2000Lossless(native));
    }
  }
  const paths = (await readdir(dir)).filter((n) => n.endsWith('.dcm')).sort().map((n) => join(dir, n));
  return { paths, studyUid, seriesUid };
}

async function stowAll(url: string, paths: string[], headers: Record<string, string>): Promise<void> {
  const groups = Array.from({ length: Math.ceil(paths.length / 100) }, (_, g) => paths.slice(g * 100, (g + 1) * 100));
  await pool(groups, 4, async (group) => void (await stowFiles(url, group, headers)));
}

/**
 * One association, one C-STORE at a time (as storescu sends), each acknowledgement timed from the request's
 * first byte to its response. Instances are made before the clock starts; new UIDs each call.
 */
async function cStoreLatencies(port: number, count: number, tag: string): Promise<number[]> {
  const studyUid = `2.25.${Date.now()}${Math.floor(Math.random() * 1000)}`;
  const instances = Array.from({ length: count }, (_, i) => {
    const sopInstanceUid = `${studyUid}.3.${i}`;
    const part10 = makeInstance({ studyUid: `${studyUid}.1`, seriesUid: `${studyUid}.2`, sopInstanceUid, instanceNumber: i + 1,
      rows: 256, columns: 256, patientName: `Bench^${tag}`, patientId: 'BENCHSTORE' });
    return { sopInstanceUid, dataSet: dataSetOf(part10) };
  });
  const connection = await UlConnection.connect(port);
  connection.socket.setNoDelay(true); // as storescu and the appliance send
  await connection.send(associateRq('BENCHSCU', 'DICOMEDGE', [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_LE] }]));
  const accepted = await connection.nextPdu();
  if (accepted?.type !== PduType.associateAc) throw new Error(`association not accepted: PDU type ${accepted?.type ?? 'none'}`);
  // PDUs no longer than the acceptor takes (6 bytes of PDU header, 6 of PDV header).
  const maxPdv = Math.min(acceptUserInformation(accepted.body).maxPduLength || 16384, 65536) - 12;
  const latencies: number[] = [];
  try {
    for (const [n, instance] of instances.entries()) {
      const t0 = performance.now();
      await connection.send(pdv(cStoreCommand(CT_IMAGE_STORAGE, instance.sopInstanceUid, n + 1), true, true));
      for (let at = 0; at < instance.dataSet.length; at += maxPdv) {
        const end = Math.min(at + maxPdv, instance.dataSet.length);
        await connection.send(pdv(instance.dataSet.subarray(at, end), false, end === instance.dataSet.length));
      }
      const response = await connection.nextPdu();
      latencies.push(performance.now() - t0);
      if (response?.type !== PduType.pData) throw new Error(`C-STORE ${n + 1}: no response (PDU type ${response?.type ?? 'none'})`);
      const status = statusOf(response.body);
      if (status !== 0) throw new Error(`C-STORE ${n + 1}: status 0x${status?.toString(16) ?? '?'}`);
    }
    await connection.send(releaseRq());
    await connection.nextPdu();
  } finally {
    connection.socket.destroy();
  }
  return latencies;
}

/** One P-DATA-TF PDU holding one PDV of the (only) presentation context. */
function pdv(value: Buffer, command: boolean, last: boolean): Buffer {
  return pDataTf([{ contextId: 1, command, last, value }]);
}

/** Status (0000,0900) of a command set in implicit VR little endian, in a P-DATA-TF body. */
function statusOf(body: Buffer): number | undefined {
  const at = body.indexOf(Buffer.from([0x00, 0x00, 0x00, 0x09, 0x02, 0x00, 0x00, 0x00]));
  return at < 0 ? undefined : body.readUInt16LE(at + 8);
}

/** Seconds to GET a series with transcoding asked for, and whether the answer still holds JPEG 2000. */
function timeTranscoded(url: string, headers: Record<string, string>): Promise<{ seconds: number; bytes: number; stillJ2k: boolean; status: number }> {
  const accept = `multipart/related; type="application/dicom"; transfer-syntax=${EXPLICIT_LE}`;
  const marker = Buffer.from(J2K_LOSSLESS, 'latin1');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    httpGet(url, { headers: { ...headers, accept } }, (response) => {
      let bytes = 0;
      let tail: Buffer = Buffer.alloc(0);
      let stillJ2k = false;
      response.on('data', (c: Buffer) => {
        bytes += c.length;
        if (!stillJ2k) stillJ2k = Buffer.concat([tail, c.subarray(0, marker.length)]).includes(marker) || c.includes(marker);
        tail = c.subarray(Math.max(0, c.length - marker.length));
      });
      response.on('error', reject);
      response.on('end', () => resolve({ seconds: (performance.now() - t0) / 1000, bytes, stillJ2k, status: response.statusCode ?? 0 }));
    }).on('error', reject);
  });
}

/** 8 clients at once GET every url once; seconds taken. */
async function fetchAll(urls: string[], headers: Record<string, string>): Promise<number> {
  const t0 = performance.now();
  await pool(urls, THUMBNAIL_CLIENTS, async (url) => {
    const { status, body } = await getBody(url, headers);
    if (status !== 200) throw new Error(`${url}: ${status} ${body.toString().slice(0, 300)}`);
  });
  return (performance.now() - t0) / 1000;
}

/** Orthanc's DICOMweb plugin: /thumbnail when it has one, else /rendered with a 128×128 viewport. */
async function orthancThumbnailPath(orthanc: OrthancPeer, instanceUrl: string): Promise<string> {
  const { status } = await getBody(`${orthanc.dicomWebUrl}${instanceUrl}/thumbnail`, { accept: 'image/jpeg' });
  return status === 200 ? '/thumbnail' : '/rendered?viewport=128,128';
}

export async function benchViewerTable(work: string): Promise<TableRow[]> {
  const rows: TableRow[] = [];
  const ct = await ctSeriesFiles(join(work, `ct${CT_COUNT}`), CT_COUNT, '2.25.9100000');
  const j2k = await j2kSeriesFiles(join(work, `j2k${J2K_COUNT}`), J2K_COUNT, '2.25.9200000');
  const dir = join(work, 'viewer');
  await rm(dir, { recursive: true, force: true });
  const orthanc = await startOrthanc({ dir: join(dir, 'orthanc'), startTimeoutMs: 60_000 });
  let served: ServedAppliance | undefined;
  try {
    const dataDir = join(dir, 'appliance');
    served = await serveAppliance(dataDir, join(work, 'appliance-viewer.log'));
    process.stdout.write('  viewer: loading the CT and JPEG 2000 series into both…\n');
    for (const paths of [ct.paths, j2k.paths]) {
      await stowAll(`${served.dicomWebUrl}/studies`, paths, AUTH);
      await stowAll(`${orthanc.dicomWebUrl}/studies`, paths, {});
    }
    const ours = { url: served.dicomWebUrl, headers: AUTH };
    const theirs = { url: orthanc.dicomWebUrl, headers: {} as Record<string, string> };
    const series = `/studies/${ct.studyUid}/series/${ct.seriesUid}`;
    const instanceUrls = ct.paths.map((_, i) => `${series}/instances/2.25.9100000.3.${i}`);

    // /metadata of the series.
    const json = { accept: 'application/dicom+json' };
    const metaOurs = percentile(await timeRuns(`${ours.url}${series}/metadata`, { ...ours.headers, ...json }, METADATA_RUNS), 50);
    const metaTheirs = percentile(await timeRuns(`${theirs.url}${series}/metadata`, json, ORTHANC_METADATA_RUNS), 50);
    rows.push({ measure: `/metadata of a ${CT_COUNT}-instance CT series, p50`, appliance: ms(metaOurs), reference: ms(metaTheirs),
      ratio: `${(metaTheirs / metaOurs).toFixed(1)}×`, target: `≤ 30 ms and ≥ 10× Orthanc: ${metaOurs <= 30 && metaTheirs / metaOurs >= 10 ? 'met' : 'NOT met'}` });

    // Cold thumbnails of every instance, 8 at once; then the same from the appliance's thumbnail cache.
    const jpeg = { accept: 'image/jpeg' };
    const theirPath = await orthancThumbnailPath(orthanc, instanceUrls[0]!);
    // Both warmed with one image of another size, so "cold" is the rendering, not the appliance's codecs loading.
    await fetchAll([`${ours.url}${instanceUrls[0]}/rendered?viewport=64,64`], { ...ours.headers, ...jpeg });
    await fetchAll([`${theirs.url}${instanceUrls[0]}/rendered?viewport=64,64`], jpeg);
    const coldOurs = await fetchAll(instanceUrls.map((u) => `${ours.url}${u}/thumbnail`), { ...ours.headers, ...jpeg });
    const coldTheirs = await fetchAll(instanceUrls.map((u) => `${theirs.url}${u}${theirPath}`), jpeg);
    rows.push({ measure: `cold series thumbnails (${CT_COUNT}, ${THUMBNAIL_CLIENTS} at once)`, appliance: rate(CT_COUNT, coldOurs),
      reference: `${rate(CT_COUNT, coldTheirs)} (${theirPath})`, ratio: `${(coldTheirs / coldOurs).toFixed(1)}×`, target: 'reported' });
    const warmOurs = await fetchAll(instanceUrls.map((u) => `${ours.url}${u}/thumbnail`), { ...ours.headers, ...jpeg });
    rows.push({ measure: `the same thumbnails again (appliance: from its disk cache)`,
      appliance: `${rate(CT_COUNT, warmOurs)} (${(coldOurs / warmOurs).toFixed(1)}× the cold rate)`, reference: '-', ratio: '-', target: 'reported' });

    // C-STORE acknowledgements alone, and while 8 clients ask for cold thumbnails (the cache emptied, and a
    // quality of its own on each pass, so none is served from it); alternated, twice each.
    const alone: number[] = [];
    const loaded: number[] = [];
    let thumbnailsDuring = 0;
    for (let pass = 0; pass < 2; pass++) {
      alone.push(...(await cStoreLatencies(served.dimsePort, CSTORE_PER_PASS, `alone${pass}`)));
      await rm(join(dataDir, 'cache', 'thumbnails'), { recursive: true, force: true });
      let sending = true;
      const viewers = Array.from({ length: THUMBNAIL_CLIENTS }, async (_, client) => {
        for (let k = client; sending; k += THUMBNAIL_CLIENTS) {
          // Past the last instance the clients start again, at another quality: another image, not in the cache.
          const quality = 89 - (Math.floor(k / instanceUrls.length) % 80);
          const { status } = await getBody(`${ours.url}${instanceUrls[k % instanceUrls.length]}/thumbnail?quality=${quality}`, { ...ours.headers, ...jpeg });
          if (status !== 200 && status !== 503) throw new Error(`thumbnail: ${status}`);
          if (status === 200) thumbnailsDuring++;
        }
      });
      try {
        loaded.push(...(await cStoreLatencies(served.dimsePort, CSTORE_PER_PASS, `loaded${pass}`)));
      } finally {
        sending = false;
        await Promise.all(viewers);
      }
    }
    alone.sort((a, b) => a - b);
    loaded.sort((a, b) => a - b);
    const p99Alone = percentile(alone, 99);
    const p99Loaded = percentile(loaded, 99);
    rows.push({ measure: `C-STORE acknowledgement p99 (256×256 CT, ${alone.length} sent), alone`, appliance: `${ms(p99Alone)} (p50 ${ms(percentile(alone, 50))})`,
      reference: '-', ratio: '-', target: 'baseline' });
    rows.push({ measure: `C-STORE acknowledgement p99 while ${THUMBNAIL_CLIENTS} cold thumbnail requests run (${thumbnailsDuring} rendered)`,
      appliance: `${ms(p99Loaded)} (p50 ${ms(percentile(loaded, 50))})`, reference: '-', ratio: '-',
      target: `≤ 1.2× alone: ${(p99Loaded / p99Alone).toFixed(2)}×, ${p99Loaded <= 1.2 * p99Alone ? 'met' : 'NOT met'}` });

    // WADO-RS of the JPEG 2000 series as Explicit VR Little Endian.
    const j2kSeries = `/studies/${j2k.studyUid}/series/${j2k.seriesUid}`;
    const transcoded = async (side: { url: string; headers: Record<string, string> }) => {
      await timeTranscoded(`${side.url}${j2kSeries}`, side.headers); // warm-up: codecs load, page cache
      const runs = [];
      for (let r = 0; r < TRANSCODE_RUNS; r++) runs.push(await timeTranscoded(`${side.url}${j2kSeries}`, side.headers));
      return median(runs, (x) => x.seconds);
    };
    const transcodeOurs = await transcoded(ours);
    if (transcodeOurs.status !== 200 || transcodeOurs.stillJ2k) throw new Error(`the appliance did not transcode: ${transcodeOurs.status}`);
    const transcodeTheirs = await transcoded(theirs);
    const theirsTranscoded = transcodeTheirs.status === 200 && !transcodeTheirs.stillJ2k;
    rows.push({ measure: `WADO-RS JPEG 2000 → Explicit VR LE (${J2K_COUNT} × 512², median of ${TRANSCODE_RUNS})`, appliance: rate(J2K_COUNT, transcodeOurs.seconds),
      reference: theirsTranscoded ? rate(J2K_COUNT, transcodeTheirs.seconds)
        : `does not transcode (${transcodeTheirs.status}${transcodeTheirs.stillJ2k ? ', JPEG 2000 sent as it is' : ''})`,
      ratio: theirsTranscoded ? `${(transcodeTheirs.seconds / transcodeOurs.seconds).toFixed(1)}×` : '-', target: 'reported' });
  } finally {
    await served?.stop();
    await orthanc.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return rows;
}
