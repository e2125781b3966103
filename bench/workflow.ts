/**
 * `npm run bench -- workflow`: the workflow services of the served appliance, on loopback.
 *  - Modality Worklist C-FIND: ITEMS scheduled items, POSTed to /api/worklist and written as the same .wl
 *    files for DCMTK's wlmscpfs. For each query of a table, p50/p99 of RUNS sequential queries to each, asked
 *    two ways: by `findscu -W` (end to end, a process start per query) and by one held dcmjs-dimse association
 *    with Nagle off, as DCMTK has it (no process start: close to the SCP's own answer time, plus the client's
 *    decoding).
 *  - Storage Commitment: a study of INSTANCES instances stored with storescu, then COMMIT_RUNS times the time from
 *    N-ACTION to N-EVENT-REPORT on the same association, under the local policy. No reference peer.
 * For quick checks, environment variables shrink the run (the full table runs without them):
 * BENCH_WORKFLOW_ITEMS (1000), BENCH_WORKFLOW_RUNS (200 per query, server and client), BENCH_WORKFLOW_INSTANCES
 * (500), BENCH_WORKFLOW_COMMIT_RUNS (5), BENCH_WORKFLOW_ONLY=worklist,commitment; BENCH_KEEP=1 keeps the
 * appliance's data and log.
 */
import dimse from 'dcmjs-dimse';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorklistItem, WorklistItemInput } from '../main/core/contract/api/worklist.js';
import { askForCommitment, type CommitmentItem } from '../test/support/commitment-scu.js';
import { SOP_CLASS_UIDS } from '../test/support/instance.js';
import { requireTool, runOk } from '../test/support/peers.js';
import { makeStudy, writeInstances } from '../test/support/study.js';
import { newUid } from '../test/support/uid.js';
import { startWlmscpfs, type WlmscpfsPeer } from '../test/support/wlmscpfs.js';
import { findWorklist, openWorklistSession } from '../test/support/worklist-scu.js';
import { AUTH, serveAppliance, type ServedAppliance } from './_dicomweb.js';
import { loadAverage, percentile, pool, table } from './_measure.js';

// Debian's DCMTK tools leave Nagle's algorithm on unless TCP_NODELAY=1 is set, which adds a delayed-ACK wait
// (about 40 ms) to each small exchange; the appliance turns it off. Every DCMTK process this benchmark starts
// (wlmscpfs, findscu, storescu) runs with it off, so both servers are compared on their own work.
process.env.TCP_NODELAY = '1';

const ITEMS = Number(process.env.BENCH_WORKFLOW_ITEMS ?? 1000);
const RUNS = Number(process.env.BENCH_WORKFLOW_RUNS ?? 200);
const INSTANCES = Number(process.env.BENCH_WORKFLOW_INSTANCES ?? 500);
const COMMIT_RUNS = Number(process.env.BENCH_WORKFLOW_COMMIT_RUNS ?? 5);
const ONLY = new Set((process.env.BENCH_WORKFLOW_ONLY ?? 'worklist,commitment').split(',').map((s) => s.trim().toLowerCase()));
/** Queries per query, server and client before the timed ones: connections, caches and the JIT warm up. */
const WARM_UP = 3;
const APPLIANCE_AE = 'DICOMEDGE';

// The in-process SCUs are dcmjs-dimse's Client, which logs every PDU by default: that would be timed too.
dimse.log.setLevel('silent');
const WLM_AE = 'EDGEWL';

/** Ten stations, each with its modality; items go round them. */
const STATIONS = [['CT1', 'CT'], ['CT2', 'CT'], ['MR1', 'MR'], ['MR2', 'MR'], ['US1', 'US'], ['US2', 'US'], ['CR1', 'CR'],
  ['DX1', 'DX'], ['MG1', 'MG'], ['PT1', 'PT']] as const;
const LAST = ['SMITH', 'JONES', 'BROWN', 'TAYLOR', 'WILSON', 'DAVIES', 'EVANS', 'THOMAS', 'JOHNSON', 'ROBERTS', 'WALKER', 'WRIGHT',
  'ROBINSON', 'THOMPSON', 'WHITE', 'HUGHES', 'EDWARDS', 'GREEN', 'HALL', 'WOOD', 'HARRIS', 'LEWIS', 'MARTIN', 'JACKSON', 'CLARKE'];
const FIRST = ['OLIVER', 'AMELIA', 'JACK', 'ISLA', 'HARRY', 'AVA', 'JACOB', 'EMILY', 'CHARLIE', 'SOPHIE', 'GEORGE', 'MIA'];
/** The schedule spans 20 days from here, in item order: ITEMS/20 items a day, spread over the stations. */
const FIRST_DAY = Date.UTC(2026, 0, 5);
const DAYS = 20;

const dicomDate = (day: number) => new Date(FIRST_DAY + day * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');

/** Item i of the schedule: deterministic, so both servers hold the same worklist. */
function scheduledItem(i: number): WorklistItemInput {
  const [station, modality] = STATIONS[i % STATIONS.length]!;
  const minutes = 7 * 60 + (i % 50) * 12;
  const n = String(i).padStart(6, '0');
  return {
    patientName: `${LAST[i % LAST.length]}^${FIRST[(i * 7) % FIRST.length]}`, patientId: `P${n}`,
    patientBirthDate: `19${String(40 + (i % 60))}0${1 + (i % 9)}1${i % 10}`, patientSex: i % 2 ? 'F' : 'M',
    accessionNumber: `A${n}`, requestedProcedureId: `RP${n}`, requestedProcedureDescription: `${modality} EXAMINATION`,
    scheduledStationAeTitle: station, scheduledStartDate: dicomDate(Math.floor((i * DAYS) / ITEMS)),
    scheduledStartTime: `${String(Math.floor(minutes / 60)).padStart(2, '0')}${String(minutes % 60).padStart(2, '0')}00`,
    modality, scheduledProcedureStepId: `SPS${n}`, scheduledProcedureStepDescription: `${modality} STEP`,
  };
}

/** Typical modality questions: its own station, its station today, a few days, a modality, a patient by name. */
const QUERIES: { name: string; keys: Record<string, string> }[] = [
  { name: 'station AE', keys: { ScheduledStationAETitle: 'CT1' } },
  { name: 'station AE + one day', keys: { ScheduledStationAETitle: 'CT1', ScheduledProcedureStepStartDate: dicomDate(0) } },
  { name: 'date range (2 days)', keys: { ScheduledProcedureStepStartDate: `${dicomDate(0)}-${dicomDate(1)}` } },
  { name: 'modality', keys: { Modality: 'MR' } },
  { name: 'patient name wildcard', keys: { PatientName: 'WIL*' } },
];

async function schedule(appliance: ServedAppliance): Promise<WorklistItem[]> {
  const items: WorklistItem[] = new Array(ITEMS);
  const t0 = performance.now();
  await pool(Array.from({ length: ITEMS }, (_, i) => i), 4, async (i) => {
    const response = await fetch(`${appliance.base}/api/worklist`, {
      method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify(scheduledItem(i)),
    });
    if (response.status !== 201) throw new Error(`POST /api/worklist refused item ${i}: ${response.status} ${await response.text()}`);
    items[i] = (await response.json()) as WorklistItem;
  });
  console.log(`  appliance: ${ITEMS} items scheduled through /api/worklist in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return items;
}

interface Server {
  name: 'appliance' | 'wlmscpfs';
  port: number;
  ae: string;
}

/** One query as a client asks it; resolves with the number of matches. */
type Ask = (keys: Record<string, string>) => Promise<number>;

interface Timings {
  p50: number;
  p99: number;
  matches: number;
}

/** RUNS timed queries per server after WARM_UP, alternating which server goes first so both see the same machine. */
async function timeAlternately(asks: Record<Server['name'], Ask>, keys: Record<string, string>): Promise<Record<Server['name'], Timings>> {
  const names = Object.keys(asks) as Server['name'][];
  const times = Object.fromEntries(names.map((name) => [name, [] as number[]])) as Record<Server['name'], number[]>;
  const matches = Object.fromEntries(names.map((name) => [name, 0])) as Record<Server['name'], number>;
  for (let run = 0; run < WARM_UP + RUNS; run++) {
    for (const name of run % 2 ? [...names].reverse() : names) {
      const t0 = performance.now();
      matches[name] = await asks[name](keys);
      if (run >= WARM_UP) times[name].push(performance.now() - t0);
    }
  }
  const summary = (name: Server['name']): Timings => {
    const sorted = times[name].sort((a, b) => a - b);
    return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), matches: matches[name] };
  };
  return { appliance: summary('appliance'), wlmscpfs: summary('wlmscpfs') };
}

async function benchWorklist(appliance: ServedAppliance): Promise<void> {
  const items = await schedule(appliance);
  const t0 = performance.now();
  const wlm: WlmscpfsPeer = await startWlmscpfs(items, WLM_AE);
  console.log(`  wlmscpfs: the same ${ITEMS} items written as .wl files with dump2dcm in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const servers: Server[] = [{ name: 'appliance', port: appliance.dimsePort, ae: APPLIANCE_AE }, { name: 'wlmscpfs', port: wlm.port, ae: WLM_AE }];
  const findscu = Object.fromEntries(servers.map((server) => [server.name, async (keys: Record<string, string>) => {
    const result = await findWorklist(server.port, server.ae, keys);
    if (result.final !== 'Success') throw new Error(`findscu -W to ${server.name}: final status ${result.final}`);
    return result.responses.length;
  }])) as Record<Server['name'], Ask>;
  /** A held association per server for one block of queries (opened by its first warm-up query), then released. */
  const onHeldAssociations = async (keys: Record<string, string>) => {
    const sessions = servers.map((server) => openWorklistSession(server.port, server.ae));
    try {
      const held = Object.fromEntries(servers.map((server, i) => [server.name, async (k: Record<string, string>) => {
        const answer = await sessions[i]!.find(k);
        if (answer.status !== 0) throw new Error(`C-FIND to ${server.name} on the held association: status 0x${answer.status.toString(16)}`);
        return answer.responses.length;
      }])) as Record<Server['name'], Ask>;
      return await timeAlternately(held, keys);
    } finally {
      await Promise.all(sessions.map((session) => session.close().catch(() => undefined)));
    }
  };
  try {
    const rows: string[][] = [['query', 'matches', 'client', 'appliance p50', 'p99', 'wlmscpfs p50', 'p99', 'ratio p50', 'ratio p99']];
    for (const query of QUERIES) {
      for (const client of ['findscu -W', 'held assoc.'] as const) {
        const t = client === 'findscu -W' ? await timeAlternately(findscu, query.keys) : await onHeldAssociations(query.keys);
        const matches = t.appliance.matches === t.wlmscpfs.matches ? String(t.appliance.matches) : `${t.appliance.matches} vs ${t.wlmscpfs.matches}`;
        if (t.appliance.matches !== t.wlmscpfs.matches) console.log(`  WARNING: ${query.name}: the appliance found ${t.appliance.matches}, wlmscpfs ${t.wlmscpfs.matches}`);
        const ms = (value: number) => value.toFixed(1);
        rows.push([query.name, matches, client, ms(t.appliance.p50), ms(t.appliance.p99), ms(t.wlmscpfs.p50), ms(t.wlmscpfs.p99),
          (t.appliance.p50 / t.wlmscpfs.p50).toFixed(2), (t.appliance.p99 / t.wlmscpfs.p99).toFixed(2)]);
        console.log(`  ${query.name}, ${client}: appliance p50 ${ms(t.appliance.p50)} ms, wlmscpfs p50 ${ms(t.wlmscpfs.p50)} ms`);
      }
    }
    console.log(`\nModality Worklist C-FIND, ${ITEMS} scheduled items, ${RUNS} sequential queries per row and server (ms)`);
    console.log(table(rows));
    console.log('(ratio: appliance time / wlmscpfs time; < 1 is faster. findscu -W: end to end with a process start per query;\n' +
      ' held assoc.: one dcmjs-dimse association per server, so mostly the SCP\'s own answer time)');
  } finally {
    await wlm.stop();
  }
}

async function benchCommitment(appliance: ServedAppliance, root: string): Promise<void> {
  const study = makeStudy({ series: 1, instancesPerSeries: INSTANCES, rows: 64, columns: 64 });
  const paths = await writeInstances(join(root, 'study'), study);
  const t0 = performance.now();
  await runOk(requireTool('storescu', 'dcmtk'), ['-aet', 'MODALITY', '-aec', APPLIANCE_AE, '127.0.0.1', String(appliance.dimsePort), ...paths],
    { timeoutMs: 600_000 });
  console.log(`  ${INSTANCES} instances (64x64) stored with storescu in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const items: CommitmentItem[] = study.map((i) => ({ sopClassUid: SOP_CLASS_UIDS.ctImage, sopInstanceUid: i.sopInstanceUid }));
  const toReport: number[] = [];
  const toResponse: number[] = [];
  for (let run = 0; run < COMMIT_RUNS; run++) {
    const { actionStatus, report, timing } = await askForCommitment({
      port: appliance.dimsePort, calledAe: APPLIANCE_AE, callingAe: 'MODALITY', transactionUid: newUid(), items, waitForReportMs: 120_000,
    });
    if (actionStatus !== 0) throw new Error(`N-ACTION answered 0x${actionStatus?.toString(16)}`);
    if (!report || timing.report === undefined) throw new Error('no N-EVENT-REPORT on the association within 120 s');
    if (report.eventType !== 1 || report.committed.length !== INSTANCES) {
      throw new Error(`the report has Event Type ${report.eventType}, ${report.committed.length} committed, ${report.failed.length} failed`);
    }
    toReport.push(timing.report - timing.actionSent!);
    toResponse.push(timing.actionResponse! - timing.actionSent!);
    console.log(`  run ${run + 1}: N-ACTION response ${toResponse.at(-1)!.toFixed(1)} ms, N-EVENT-REPORT ${toReport.at(-1)!.toFixed(1)} ms`);
  }
  const sortedReport = [...toReport].sort((a, b) => a - b);
  const ms = (value: number) => value.toFixed(1);
  console.log(`\nStorage Commitment, local policy, report on the same association, ${COMMIT_RUNS} runs (ms from N-ACTION sent)`);
  console.log(table([
    ['study', 'N-ACTION-RSP p50', 'N-EVENT-REPORT p50', 'min', 'max', 'reference'],
    [`${INSTANCES} instances`, ms(percentile([...toResponse].sort((a, b) => a - b), 50)), ms(percentile(sortedReport, 50)),
      ms(sortedReport[0]!), ms(sortedReport.at(-1)!), 'none (no ratio)'],
  ]));
  console.log('(no reference peer runs here: DCMTK has no Storage Commitment SCP)');
}

export async function run(): Promise<void> {
  console.log(`  load average before: ${await loadAverage()}`);
  const root = await mkdtemp(join(tmpdir(), 'dicom-edge-bench-workflow-'));
  const appliance = await serveAppliance(join(root, 'data'), join(root, 'appliance.log'));
  try {
    if (ONLY.has('worklist')) await benchWorklist(appliance);
    if (ONLY.has('commitment')) await benchCommitment(appliance, root);
  } finally {
    await appliance.stop();
    if (process.env.BENCH_KEEP === '1') console.log(`  kept ${root}`);
    else await rm(root, { recursive: true, force: true });
  }
  console.log(`  load average after: ${await loadAverage()}`);
}
