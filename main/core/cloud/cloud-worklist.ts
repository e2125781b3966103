/**
 * The cloud's worklist (settings: cloud.worklist): at start and every refreshIntervalMs, the archive
 * destination's UPS-RS worklist is searched for SCHEDULED workitems of each configured station (the station's
 * AE title as the Code Value of the Scheduled Station Name Code Sequence), and what it offers replaces the
 * SCHEDULED cloud items in the index in one transaction (store/cloud-worklist.ts). Modality Worklist C-FIND
 * answers from the index, so modalities get their worklist while the archive cannot be reached. A failed
 * search changes nothing: the items of the last good refresh stay; it is tried again after a backoff. Turned
 * off, or with no archive destination, the SCHEDULED cloud items are removed at the next round.
 */
import type { Logger } from 'pino';
import type { CloudSettings } from '../contract/settings.js';
import { jsonString, type ReceivedDicomJson } from '../dicom/dicom-json-values.js';
import { tagOf } from '../dicom/dictionary.js';
import type { ApplianceService } from '../service.js';
import type { Archive } from '../store/archive.js';
import type { CloudWorkitem, CloudWorklistRefresh } from '../store/cloud-worklist.js';
import { ArchiveReadError } from './archive-errors.js';
import type { ArchiveReader } from './archive-reader.js';
import { worklistItemOf } from './workitems.js';
import { RoundLoop } from './round-loop.js';

export type WorkitemSource = Pick<ArchiveReader, 'name' | 'searchWorkitems'>;

export interface CloudWorklistOptions {
  archive: Pick<Archive, 'cloudWorklist'>;
  /** The archive destination's reader, asked at each refresh; undefined while no destination is the archive. */
  reader: () => WorkitemSource | undefined;
  /** Read at each refresh. */
  settings: () => CloudSettings['worklist'];
  logger: Logger;
}

export type WorklistRound = { mode: 'disabled' } | ({ mode: 'refreshed'; destination: string; workitems: number } & CloudWorklistRefresh);

const SOP_INSTANCE_UID = tagOf('SOPInstanceUID');
/** Longest wait for one station's search. */
const SEARCH_TIMEOUT_MS = 60_000;

export class CloudWorklistService implements ApplianceService {
  readonly name = 'cloud-worklist';
  private readonly log: Logger;
  private readonly loop: RoundLoop<WorklistRound> = new RoundLoop({
    round: () => this.round(),
    reports: {
      // Logged once per outage, and again when its reason changes.
      failed: ({ error, reason, newReason }) => {
        if (!newReason) return;
        this.log.warn({ event: 'cloud-worklist-refresh-failed', kind: error instanceof ArchiveReadError ? error.kind : 'other',
          status: error instanceof ArchiveReadError ? error.status : undefined, reason, retryInMs: this.nextDelay() },
          'cloud worklist not refreshed; the items of the last refresh stay offered');
      },
      resumed: ({ failures }) => this.log.info({ event: 'cloud-worklist-resumed', failedRefreshes: failures }, 'cloud worklist refreshed again'),
    },
    nextDelay: () => this.nextDelay(),
    stopReason: 'cloud worklist stopped',
  });

  constructor(private readonly options: CloudWorklistOptions) {
    this.log = options.logger.child({ component: 'cloud-worklist' });
  }

  async start(): Promise<string[]> {
    this.loop.start();
    const settings = this.options.settings();
    return settings.enabled ? [`cloud worklist (UPS-RS) for stations ${settings.stations.join(', ')}`] : [];
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One refresh now (after the one running); rejects with the reason when the archive's answer cannot be used. */
  refreshOnce(): Promise<WorklistRound> {
    return this.loop.runOnce();
  }

  /** One scheduled refresh: a failure is logged (once per outage, again when its reason changes), never thrown. */
  tick(): Promise<WorklistRound | undefined> {
    return this.loop.reportedRound();
  }

  /** The refresh interval, or sooner after a failure (base·2^n, never beyond the interval). */
  nextDelay(): number {
    const settings = this.options.settings();
    const failures = this.loop.failures;
    if (failures === 0) return settings.refreshIntervalMs;
    return Math.min(settings.refreshIntervalMs, settings.retryBaseMs * 2 ** (failures - 1), settings.retryCapMs);
  }

  private async round(): Promise<WorklistRound> {
    const settings = this.options.settings();
    const reader = this.options.reader();
    if (!settings.enabled || !reader) {
      // Turned off, or no archive to ask: what it offered before is not offered on (items begun here stay).
      const cleared = this.options.archive.cloudWorklist.refresh('', [], Date.now());
      if (cleared.removed > 0) {
        this.log.info({ event: 'cloud-worklist-cleared', removed: cleared.removed, reason: settings.enabled ? 'no destination is the archive' : 'cloud.worklist.enabled is off' },
          'the cloud worklist is no longer offered');
      }
      return { mode: 'disabled' };
    }
    const datasets: ReceivedDicomJson[] = [];
    for (const station of settings.stations) {
      datasets.push(...await reader.searchWorkitems({
        match: { ProcedureStepState: 'SCHEDULED', 'ScheduledStationNameCodeSequence.CodeValue': station },
        timeoutMs: SEARCH_TIMEOUT_MS, signal: this.loop.signal,
      }));
    }
    const workitems = new Map<string, CloudWorkitem>();
    for (const dataset of datasets) {
      try {
        const item = worklistItemOf(dataset, settings.stations);
        workitems.set(item.workitemUid, item);
      } catch (error) {
        this.log.warn({ event: 'cloud-workitem-skipped', destination: reader.name, workitemUid: jsonString(dataset, SOP_INSTANCE_UID),
          reason: (error as Error).message }, 'a workitem of the cloud worklist cannot be offered');
      }
    }
    const outcome = this.options.archive.cloudWorklist.refresh(reader.name, [...workitems.values()], Date.now());
    for (const skipped of outcome.skipped) {
      this.log.warn({ event: 'cloud-workitem-skipped', destination: reader.name, workitemUid: skipped.workitemUid, reason: skipped.reason },
        'a workitem of the cloud worklist cannot be offered');
    }
    this.log.info({ event: 'cloud-worklist-refreshed', destination: reader.name, stations: settings.stations, workitems: workitems.size,
      added: outcome.added, updated: outcome.updated, removed: outcome.removed, skipped: outcome.skipped.length }, 'cloud worklist refreshed');
    return { mode: 'refreshed', destination: reader.name, workitems: workitems.size, ...outcome };
  }
}
