/**
 * A describe thread of the pool in describe-pool.ts (piscina loads this file in each thread): the DICOM JSON of
 * one instance, from its first bytes or its file, parsed and gzipped here so the event loop that receives the
 * next instances never runs it.
 */
import { describeFile, type DescribedFile } from './instance-metadata.js';

export interface DescribeTask extends DescribedFile {
  /** Whether the caller also wants the text (to answer with it). */
  withText: boolean;
}

/**
 * The packed description (a few KB, copied back), or why it could not be made: an Error's class and fields do
 * not survive the crossing, so the reason travels as text.
 */
export type DescribeTaskResult =
  | { encoding: 'gzip' | 'identity'; json: Uint8Array; text?: string }
  | { error: string };

export default async function describeTask(task: DescribeTask): Promise<DescribeTaskResult> {
  try {
    // A Buffer arrives as a plain Uint8Array; dicom-parser inflates a deflated data set with Buffer's methods.
    const head = task.head && Buffer.from(task.head.buffer, task.head.byteOffset, task.head.byteLength);
    const described = await describeFile({ path: task.path, sizeBytes: task.sizeBytes, head });
    return { encoding: described.encoding, json: described.json, ...(task.withText ? { text: described.text } : {}) };
  } catch (error) {
    return { error: (error as Error)?.message ?? String(error) };
  }
}
