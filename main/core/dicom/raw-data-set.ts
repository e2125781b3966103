/**
 * A received data set read from its bytes, for what a naturalized (dcmjs) copy loses: a zero-length value
 * (dcmjs turns an empty US into 0) and text in ISO 2022 code extensions (dcmjs decodes with the first
 * character set only). Top-level elements only.
 */
import dicomParser from 'dicom-parser';
import type { DataSet } from 'dicom-parser';
import { decodeText } from './charset.js';
import { tagOf } from './dictionary.js';

export interface RawDataSet {
  /** Whether the element is present with a zero-length value; undefined when absent. */
  isEmpty(keyword: string): boolean | undefined;
  /** The element's text decoded under the data set's Specific Character Set; undefined when absent. */
  text(keyword: string, vr: string): string | undefined;
}

const parserTag = (keyword: string) => `x${tagOf(keyword).toLowerCase()}`;

/** Reads a data set (no Part 10 header) in the given transfer syntax; undefined when its bytes do not parse. */
export function readRawDataSet(bytes: Uint8Array, transferSyntaxUid: string): RawDataSet | undefined {
  let ds: DataSet;
  try {
    ds = dicomParser.parseDicom(bytes, { TransferSyntaxUID: transferSyntaxUid });
  } catch {
    return undefined;
  }
  const specificCharacterSet = ds.string(parserTag('SpecificCharacterSet')) ?? '';
  return {
    isEmpty: (keyword) => {
      const element = ds.elements[parserTag(keyword)];
      return element ? element.length === 0 : undefined;
    },
    text: (keyword, vr) => {
      const element = ds.elements[parserTag(keyword)];
      if (!element) return undefined;
      return decodeText(ds.byteArray.subarray(element.dataOffset, element.dataOffset + element.length), specificCharacterSet, vr);
    },
  };
}
