// DCMTK's own worklist SCP (wlmscpfs) as the reference peer: the appliance's scheduled items written as .wl
// files with dump2dcm into one AE title's folder, answered from there.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorklistItem } from '../../main/core/contract/api/worklist.js';
import { spawnDaemon, untilReadyOrExit, type Daemon } from './daemon.js';
import { freePort, requireTool, runOk, waitForPort } from './peers.js';

/** The .wl file content (dump2dcm's text form) of an item. */
export function worklistDump(item: WorklistItem): string {
  const line = (tag: string, vr: string, value: string) => `(${tag}) ${vr} [${value}]`;
  return [
    line('0008,0050', 'SH', item.accessionNumber),
    line('0008,0090', 'PN', item.referringPhysicianName),
    line('0010,0010', 'PN', item.patientName),
    line('0010,0020', 'LO', item.patientId),
    line('0010,0030', 'DA', item.patientBirthDate),
    line('0010,0040', 'CS', item.patientSex),
    line('0020,000d', 'UI', item.studyInstanceUid),
    line('0032,1060', 'LO', item.requestedProcedureDescription),
    '(0040,0100) SQ',
    '(fffe,e000) -',
    line('0008,0060', 'CS', item.modality),
    line('0040,0001', 'AE', item.scheduledStationAeTitle),
    line('0040,0002', 'DA', item.scheduledStartDate),
    line('0040,0003', 'TM', item.scheduledStartTime),
    line('0040,0006', 'PN', item.scheduledPerformingPhysicianName),
    line('0040,0007', 'LO', item.scheduledProcedureStepDescription),
    line('0040,0009', 'SH', item.scheduledProcedureStepId),
    '(fffe,e00d) -',
    '(fffe,e0dd) -',
    line('0040,1001', 'SH', item.requestedProcedureId),
    '',
  ].join('\n');
}

export interface WlmscpfsPeer {
  port: number;
  aeTitle: string;
  daemon: Daemon;
  /** The worklist folder (-dfp); removed by stop(). */
  dir: string;
  stop(): Promise<void>;
}

/** wlmscpfs on a free loopback port, single process, answering as `aeTitle` from one .wl file per item. */
export async function startWlmscpfs(items: readonly WorklistItem[], aeTitle = 'EDGEWL'): Promise<WlmscpfsPeer> {
  const dir = await mkdtemp(join(tmpdir(), 'wlm-'));
  try {
    const aeDir = join(dir, aeTitle);
    await mkdir(aeDir, { recursive: true });
    await writeFile(join(aeDir, 'lockfile'), '');
    const dump2dcm = requireTool('dump2dcm', 'dcmtk');
    for (const [index, item] of items.entries()) {
      const dump = join(dir, `${index}.dump`);
      await writeFile(dump, worklistDump(item));
      await runOk(dump2dcm, [dump, join(aeDir, `${index}.wl`)]);
    }
    const port = await freePort();
    const daemon = spawnDaemon(requireTool('wlmscpfs', 'dcmtk'), ['-dfp', dir, '-dfr', '--single-process', String(port)]);
    await untilReadyOrExit(daemon, 'wlmscpfs', waitForPort(port, '127.0.0.1', 10_000));
    return {
      port, aeTitle, daemon, dir,
      async stop() {
        await daemon.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
