import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeInstance, type InstanceOptions } from './instance.js';
import { newUid } from './uid.js';

export interface GeneratedInstance {
  buffer: Buffer;
  studyUid: string;
  seriesUid: string;
  sopInstanceUid: string;
}

export type StudyOptions = Omit<InstanceOptions, 'seriesUid' | 'sopInstanceUid' | 'seriesNumber' | 'instanceNumber' | 'omitSopInstanceUid'> & {
  series: number;
  instancesPerSeries: number;
};

/** One study of `series` series with `instancesPerSeries` instances each; patient and study fields are shared. */
export function makeStudy(opts: StudyOptions): GeneratedInstance[] {
  const { series, instancesPerSeries, ...shared } = opts;
  const studyUid = shared.studyUid ?? newUid();
  const items: GeneratedInstance[] = [];
  for (let s = 1; s <= series; s++) {
    const seriesUid = newUid();
    const frameOfReferenceUid = shared.frameOfReferenceUid ?? newUid();
    for (let i = 1; i <= instancesPerSeries; i++) {
      const sopInstanceUid = newUid();
      const buffer = makeInstance({
        ...shared,
        studyUid,
        seriesUid,
        sopInstanceUid,
        frameOfReferenceUid,
        seriesNumber: s,
        instanceNumber: i,
        seriesDescription: shared.seriesDescription ?? `Test series ${s}`,
      });
      items.push({ buffer, studyUid, seriesUid, sopInstanceUid });
    }
  }
  return items;
}

/** Writes each instance to dir as <SOPInstanceUID>.dcm; returns the paths in input order. */
export async function writeInstances(
  dir: string,
  items: ReadonlyArray<{ buffer: Buffer; sopInstanceUid: string }>,
): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const item of items) {
    const path = join(dir, `${item.sopInstanceUid}.dcm`);
    await writeFile(path, item.buffer);
    paths.push(path);
  }
  return paths;
}
