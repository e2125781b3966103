// The parsers that take bytes from outside, as fuzz targets. Each names the errors that are its precise
// refusals of bad input; any other throw is a crash.
import { Readable } from 'node:stream';
import { settingsSchema } from '../../main/core/contract/settings.js';
import { describeIssues } from '../../main/core/contract/settings-problems.js';
import { DicomParseError, parseInstanceHeader } from '../../main/core/dicom/header.js';
import { InvalidMatchKeyError, matches, parseMatchKey, toSqlCondition, type MatchAttribute } from '../../main/core/dicom/matching.js';
import { PduReader } from '../../main/core/dimse/pdu-reader.js';
import { readCStoreCommand, splitPdvs } from '../../main/core/dimse/pdata.js';
import { BodyTooLargeError, MalformedMultipartError, readMultipart } from '../../main/core/multipart/reader.js';
import { parseDatasets } from '../../main/core/cloud/archive-client.js';
import { ArchiveReadError } from '../../main/core/cloud/archive-errors.js';
import { jsonInteger, jsonString, jsonStrings } from '../../main/core/dicom/dicom-json-values.js';
import type { FuzzTarget } from './engine.js';

const words = (...list: string[]) => list.map((w) => Buffer.from(w, 'latin1'));

/** Cuts an input into chunks as a socket might: the first byte picks the chunk size. */
function chunks(input: Buffer): Buffer[] {
  const size = 1 + ((input[0] ?? 0) % 97);
  const out: Buffer[] = [];
  for (let at = 0; at < input.length; at += size) out.push(input.subarray(at, at + size));
  return out;
}

export const MULTIPART_BOUNDARY = 'fuzz-boundary';

export const TARGETS: FuzzTarget[] = [
  {
    name: 'pdu',
    run(input) {
      const reader = new PduReader();
      for (const chunk of chunks(input)) {
        reader.push(chunk, (pdu) => {
          for (const pdv of splitPdvs(pdu) ?? []) if (pdv.command) readCStoreCommand(pdv.value);
        });
      }
    },
    isRefusal: (error) => error instanceof Error && /^(Unknown PDU type|PDU of \d+ bytes exceeds)/.test(error.message),
  },
  {
    name: 'part10',
    run(input) {
      // As the archive does: first with a prefix of the file, then with all of it.
      const tail = input.subarray(Math.max(0, input.length - 8));
      parseInstanceHeader(input.subarray(0, input.length >> 1), input.length, tail);
      parseInstanceHeader(input, input.length, tail);
    },
    isRefusal: (error) => error instanceof DicomParseError,
    coverageOf: ['/main/core/', '/node_modules/dicom-parser/'],
    dictionary: words('DICM', '\x02\x00\x10\x00UI', '\x08\x00\x18\x00UI', '\xe0\x7f\x10\x00OB\x00\x00', '\xfe\xff\x00\xe0', '\xff\xff\xff\xff', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99'),
  },
  {
    name: 'multipart',
    async run(input) {
      for await (const part of readMultipart(Readable.from(chunks(input)), MULTIPART_BOUNDARY, { maxBytes: 1024 * 1024 })) {
        for await (const piece of part.body) void piece;
      }
    },
    isRefusal: (error) => error instanceof MalformedMultipartError || error instanceof BodyTooLargeError,
    dictionary: words(`\r\n--${MULTIPART_BOUNDARY}`, `--${MULTIPART_BOUNDARY}--`, '\r\n\r\n', 'Content-Type: application/dicom\r\n', ' \t'),
  },
  {
    // "VR\nkeyword\nvalue": a QIDO or C-FIND matching key, parsed and compiled to SQL and to a matcher.
    name: 'match',
    run(input) {
      const [vr = '', keyword = '', ...rest] = input.toString('utf8').split('\n');
      const attribute = { keyword: keyword || 'PatientName', vr: (vr || 'PN') as MatchAttribute['vr'], multiValued: rest.length > 1 };
      for (const fuzzy of [false, true]) {
        const key = parseMatchKey(attribute, rest.join('\n'), { fuzzy });
        toSqlCondition(key, 'column');
        matches(key, 'DOE^JOHN');
        matches(key, '20240115');
        matches(key, null);
      }
    },
    isRefusal: (error) => error instanceof InvalidMatchKeyError,
    dictionary: words('*', '?', '-', '\\', 'PN', 'DA', 'TM', 'DT', 'UI', 'CS', 'IS', '2024', '1.2.3', '=', '^'),
  },
  {
    // A DICOM JSON answer of the archive (QIDO-RS, metadata), and the values the index takes from it.
    name: 'dicom-json',
    run(input) {
      const datasets = parseDatasets(input.toString('utf8'), 'fuzz', 'http://archive.invalid/');
      for (const dataset of datasets) {
        for (const tag of Object.keys(dataset).concat(['00100010', '0020000D', '00080061', '00201208', '00200011'])) {
          jsonStrings(dataset, tag);
          jsonString(dataset, tag);
          jsonInteger(dataset, tag);
        }
      }
    },
    isRefusal: (error) => error instanceof ArchiveReadError,
    dictionary: words('"vr"', '"Value"', '"PN"', '"Alphabetic"', '"00100010"', '"0020000D"', 'null', '[]', '{}', '1e400', '"__proto__"', '"InlineBinary"', '"BulkDataURI"'),
  },
  {
    // The settings file as the loader reads it: JSON text, validated against the schema.
    name: 'settings',
    run(input) {
      let data: unknown;
      try {
        data = input.toString('utf8').trim() === '' ? {} : JSON.parse(input.toString('utf8'));
      } catch (error) {
        if (error instanceof SyntaxError) return;
        throw error;
      }
      const result = settingsSchema.safeParse(data);
      if (!result.success) describeIssues(result.error, data);
    },
    isRefusal: () => false,
    dictionary: words('"destinations"', '"storage"', '"dimse"', '"auth"', '"kind"', '"baseUrl"', '"http://x"', 'null', 'true', '[]', '{}', '-1', '1e309', '"__proto__"'),
  },
];
