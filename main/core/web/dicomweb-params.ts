/**
 * The path and query parameters of the DICOMweb routes as route schemas: the UIDs in a path are checked
 * (PS3.5 9.1) before a handler runs, with the answer every bad UID in a path gets. Only what each route
 * reads is typed here; QIDO's keys are attribute names, open-ended, and QIDO parses its query itself.
 */
import { z } from 'zod';
import { uidParam } from '../contract/api/common.js';

export const noParams = z.object({});
export const studyParams = z.object({ study: uidParam('study') });
export const seriesParams = studyParams.extend({ series: uidParam('series') });
export const instanceParams = seriesParams.extend({ instance: uidParam('instance') });
/** The three resources that WADO-RS retrieve and DELETE serve alike: a study, a series, an instance. */
export const RESOURCE_ROUTES = [
  ['/dicom-web/studies/:study', studyParams],
  ['/dicom-web/studies/:study/series/:series', seriesParams],
  ['/dicom-web/studies/:study/series/:series/instances/:instance', instanceParams],
] as const;
/** `:frames` is a frame list (1,3,5), parsed by the route. */
export const framesParams = instanceParams.extend({ frames: z.string() });
/** `*` is a bulk data path (tag[/item/tag…]), parsed by the route. */
export const bulkdataParams = instanceParams.extend({ '*': z.string() });

/** A query parameter given once (a repeated one would arrive as a list). */
const once = (name: string) => z.string({ error: `${name} must be given once` }).optional();

/** PS3.18 8.3.5.1: the rendered and thumbnail parameters, parsed by the route (numbers, lists of them). */
export const renderedQuery = z.object({ viewport: once('viewport'), window: once('window'), quality: once('quality'), annotation: once('annotation') });

/** DELETE's ?force (true, 1 or empty: delete even what still waits for upload). */
export const deleteQuery = z.object({ force: z.union([z.string(), z.array(z.string())]).optional() });
