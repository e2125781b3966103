import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import {
  InvalidMatchKeyError,
  matches,
  parseMatchKey,
  toGlobPattern,
  toLikePattern,
  toSqlCondition,
  type MatchAttribute,
  type MatchKey,
} from '../../main/core/dicom/matching.js';
import { attributeByKeyword, attributeByTag, attributesUpTo, lookupAttribute, QUERY_ATTRIBUTES } from '../../main/core/dicom/keywords.js';
import { toDicomJson, UnknownAttributeError } from '../../main/core/dicom/dicom-json.js';

const PN: MatchAttribute = { keyword: 'PatientName', vr: 'PN' };
const LO: MatchAttribute = { keyword: 'StudyDescription', vr: 'LO' };
const CS: MatchAttribute = { keyword: 'Modality', vr: 'CS' };
const MODALITIES: MatchAttribute = { keyword: 'ModalitiesInStudy', vr: 'CS', multiValued: true };
const DA: MatchAttribute = { keyword: 'StudyDate', vr: 'DA' };
const TM: MatchAttribute = { keyword: 'StudyTime', vr: 'TM' };
const DT: MatchAttribute = { keyword: 'AcquisitionDateTime', vr: 'DT' };
const UI: MatchAttribute = { keyword: 'StudyInstanceUID', vr: 'UI' };
const IS: MatchAttribute = { keyword: 'SeriesNumber', vr: 'IS' };

/**
 * Matches `values` with both forms of the key, in memory and as SQL over a one-column table, and asserts
 * they agree; returns the matching values.
 */
let db: Database.Database;
function matching(key: MatchKey, values: (string | number | null)[]): (string | number | null)[] {
  const inMemory = values.filter((v) => matches(key, v));
  if (!key.multiValued) {
    db.exec('DELETE FROM t');
    const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    values.forEach((v, i) => insert.run(i, v));
    const condition = toSqlCondition(key, 'v');
    const sql = `SELECT id FROM t ${condition ? `WHERE ${condition.sql}` : ''} ORDER BY id`;
    const ids = (db.prepare(sql).all(...(condition?.params ?? [])) as { id: number }[]).map((r) => r.id);
    assert.deepEqual(ids.map((i) => values[i]), inMemory, `SQL and in-memory matching agree for ${key.keyword}=${key.value}`);
  }
  return inMemory;
}

function invalid(attribute: MatchAttribute, value: string, problem: RegExp): void {
  assert.throws(
    () => parseMatchKey(attribute, value),
    (error: unknown) => {
      assert.ok(error instanceof InvalidMatchKeyError, `InvalidMatchKeyError for ${value}`);
      assert.equal(error.attribute, attribute.keyword);
      assert.equal(error.value, value);
      assert.match(error.message, problem);
      assert.ok(error.message.includes(attribute.keyword) && error.message.includes(JSON.stringify(value)));
      return true;
    },
  );
}

describe('matching keys (PS3.4 C.2.2.2)', () => {
  before(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v)');
  });
  after(() => db.close());

  test('empty and lone * are universal and match everything, empty values included', () => {
    for (const value of ['', '   ', '*']) {
      for (const attribute of [PN, LO, DA, TM, UI, IS]) {
        const key = parseMatchKey(attribute, value);
        assert.equal(key.matcher.kind, 'universal', `${attribute.vr} ${JSON.stringify(value)}`);
        assert.equal(toSqlCondition(key, 'v'), undefined);
      }
    }
    assert.deepEqual(matching(parseMatchKey(LO, ''), ['A', '', null]), ['A', '', null]);
  });

  test('single value matching is exact and case-sensitive except for PN; surrounding spaces do not count', () => {
    assert.deepEqual(matching(parseMatchKey(CS, 'CT'), ['CT', 'ct', 'CTX', '', null]), ['CT']);
    assert.deepEqual(matching(parseMatchKey(LO, ' Head CT '), ['Head CT', 'head ct', 'Head CT 2']), ['Head CT']);
    assert.deepEqual(
      matching(parseMatchKey(PN, 'doe^john'), ['DOE^JOHN', 'Doe^John', 'DOE^JOHNNY', 'DOE', '']),
      ['DOE^JOHN', 'Doe^John'],
    );
  });

  test('PN case folding is ASCII-only, as SQLite NOCASE and LIKE do', () => {
    assert.deepEqual(matching(parseMatchKey(PN, 'müller*'), ['MÜLLER^JÜRGEN', 'Müller^Jürgen', 'mÜller']), ['Müller^Jürgen']);
  });

  test('wildcards * and ? : PN case-insensitive, other VRs case-sensitive', () => {
    const names = ['DOE^JOHN', 'doe^jane', 'DOERING^A', 'ADOE', 'ROE^RICHARD', ''];
    assert.deepEqual(matching(parseMatchKey(PN, 'DOE*'), names), ['DOE^JOHN', 'doe^jane', 'DOERING^A']);
    assert.deepEqual(matching(parseMatchKey(PN, '?oe^*'), names), ['DOE^JOHN', 'doe^jane', 'ROE^RICHARD']);
    assert.deepEqual(matching(parseMatchKey(PN, '*oe'), names), ['ADOE']);
    assert.deepEqual(matching(parseMatchKey(LO, 'Head*'), ['Head CT', 'head CT', 'Headache', 'A Head']), ['Head CT', 'Headache']);
    assert.deepEqual(matching(parseMatchKey(LO, '*C?'), ['Head CT', 'CT', 'MRI', 'xCTx']), ['Head CT', 'CT']);
  });

  test('characters special to LIKE and GLOB are literal', () => {
    const values = ['50%_off', '50XYoff', '50%_offer', 'A[1]x', 'A1x', 'a\\b', 'ab'];
    assert.deepEqual(matching(parseMatchKey(LO, '50%_*'), values), ['50%_off', '50%_offer']);
    assert.deepEqual(matching(parseMatchKey(LO, 'A[1]*'), values), ['A[1]x']);
    assert.deepEqual(matching(parseMatchKey(PN, '50%_o?f'), values), ['50%_off']);
    assert.deepEqual(matching(parseMatchKey(PN, 'A[1]*'), values), ['A[1]x']);
    assert.equal(toLikePattern('a*b?c%d_e\\f'), 'a%b_c\\%d\\_e\\\\f');
    assert.equal(toGlobPattern('a*[b]?'), 'a*[[]b]?');
  });

  test('wildcards are refused where the VR does not allow them', () => {
    invalid(DA, '2026*', /not a valid date/);
    invalid(TM, '10*', /not a valid time/);
    invalid(IS, '1*', /not an integer/);
    invalid(UI, '1.2.*', /not a UID/);
  });

  test('DA: single date, closed range and ranges open on either side; empty dates never match a range', () => {
    const dates = ['20251231', '20260101', '20260115', '20260131', '20260201', ''];
    assert.deepEqual(matching(parseMatchKey(DA, '20260115'), dates), ['20260115']);
    assert.deepEqual(matching(parseMatchKey(DA, '20260101-20260131'), dates), ['20260101', '20260115', '20260131']);
    assert.deepEqual(matching(parseMatchKey(DA, '20260115-'), dates), ['20260115', '20260131', '20260201']);
    assert.deepEqual(matching(parseMatchKey(DA, '-20260101'), dates), ['20251231', '20260101']);
    assert.deepEqual(matching(parseMatchKey(DA, '20260101-20260101'), dates), ['20260101']);
  });

  test('DA: malformed values and ranges are refused precisely', () => {
    invalid(DA, '20261301', /not a valid date YYYYMMDD/);
    invalid(DA, '20260230', /not a valid date/);
    invalid(DA, '2026-01-01', /expected one '-'/);
    invalid(DA, '20260131-20260101', /start 20260131 is after its end 20260101/);
    invalid(DA, '-', /range without bounds/);
    invalid(DA, '2026010', /not a valid date/);
    invalid(DA, '20260101\\20260102', /list of values/);
    assert.equal(parseMatchKey(DA, '20240229').matcher.kind, 'single');
  });

  test('TM: partial times cover their whole span, in single values and ranges', () => {
    const times = ['0959', '095959.999', '10', '1000', '101500', '1015', '101530.5', '1030', '103059.999999', '1031', '11', ''];
    assert.deepEqual(matching(parseMatchKey(TM, '10'), times), ['10', '1000', '101500', '1015', '101530.5', '1030', '103059.999999', '1031']);
    assert.deepEqual(matching(parseMatchKey(TM, '1015'), times), ['101500', '1015', '101530.5']);
    assert.deepEqual(matching(parseMatchKey(TM, '101500.123'), ['101500.123', '101500.1234', '101500.12', '101500']), ['101500.123', '101500.1234']);
    assert.deepEqual(matching(parseMatchKey(TM, '1000-1030'), times), ['10', '1000', '101500', '1015', '101530.5', '1030', '103059.999999']);
    assert.deepEqual(matching(parseMatchKey(TM, '101500-'), times), ['101500', '1015', '101530.5', '1030', '103059.999999', '1031', '11']);
    assert.deepEqual(matching(parseMatchKey(TM, '-0959'), times), ['0959', '095959.999']);
    assert.deepEqual(matching(parseMatchKey(TM, '10:15-10:15:59'), times), ['101500', '1015', '101530.5']);
  });

  test('TM: malformed times are refused', () => {
    invalid(TM, '25', /not a valid time/);
    invalid(TM, '1060', /not a valid time/);
    invalid(TM, '10.5', /not a valid time/);
    invalid(TM, '1100-1000', /after its end/);
    invalid(TM, '10-11-12', /expected one '-'/);
  });

  test('DT: ranges, offsets ignored', () => {
    const values = ['20260101', '20260101120000', '20260102083000.5', '20260103'];
    assert.deepEqual(matching(parseMatchKey(DT, '20260101120000-20260102'), values), ['20260101120000', '20260102083000.5']);
    assert.deepEqual(matching(parseMatchKey(DT, '20260101120000+0100-'), values), ['20260101120000', '20260102083000.5', '20260103']);
    assert.deepEqual(matching(parseMatchKey(DT, '-20260101235959-0500'), values), ['20260101', '20260101120000']);
    invalid(DT, '2026013', /is neither a DT value .* nor a DT range/);
    invalid(DT, '20261301', /not a valid date-time/);
  });

  test('UI: single UID and lists (backslash, or comma as QIDO clients send)', () => {
    const uids = ['1.2.3', '1.2.4', '1.2.30', '1.2'];
    assert.deepEqual(matching(parseMatchKey(UI, '1.2.3'), uids), ['1.2.3']);
    assert.deepEqual(matching(parseMatchKey(UI, '1.2.3\\1.2.4'), uids), ['1.2.3', '1.2.4']);
    assert.deepEqual(matching(parseMatchKey(UI, '1.2.30,1.2'), uids), ['1.2.30', '1.2']);
    const key = parseMatchKey(UI, '1.2.3\\1.2.3');
    assert.deepEqual(key.matcher, { kind: 'uid-list', uids: ['1.2.3'] });
  });

  test('UI: an invalid UID, alone or in a list, is refused naming it', () => {
    invalid(UI, '1.02.3', /not a UID: it is not a dotted sequence/);
    invalid(UI, '1.2.3\\abc', /holds a UID "abc" that contains characters other than digits and dots/);
    invalid(UI, '1.2.3\\', /holds a UID "" that is empty/);
    invalid(UI, `1.${'1'.repeat(70)}`, /at most 64/);
  });

  test('numbers: single value equality; anything else is refused', () => {
    assert.deepEqual(matching(parseMatchKey(IS, '3'), [1, 3, 30, null]), [3]);
    assert.deepEqual(matching(parseMatchKey(IS, '+03'), [3, 4]), [3]);
    invalid(IS, 'three', /not an integer/);
    invalid(IS, '1-3', /not an integer/);
  });

  test('value lists of code strings: any value matches', () => {
    assert.deepEqual(matching(parseMatchKey(CS, 'CT\\MR'), ['CT', 'MR', 'US', '']), ['CT', 'MR']);
    assert.deepEqual(matching(parseMatchKey(CS, 'C*\\MR'), ['CT', 'CR', 'MR', 'US']), ['CT', 'CR', 'MR']);
    assert.equal(parseMatchKey(CS, 'CT\\*').matcher.kind, 'universal');
    invalid(CS, 'CT\\\\MR', /empty value in its list/);
    invalid(LO, 'A\\B', /list of values, allowed only for UIDs and code strings/);
    invalid(PN, 'DOE\\ROE', /list of values/);
  });

  test('multi-valued attributes: ModalitiesInStudy CT\\MR matches a study whose set contains any', () => {
    const studies = ['CT', 'MR\\US', 'CR\\CT', 'US', 'PT\\SR', ''];
    assert.deepEqual(matching(parseMatchKey(MODALITIES, 'CT\\MR'), studies), ['CT', 'MR\\US', 'CR\\CT']);
    assert.deepEqual(matching(parseMatchKey(MODALITIES, 'US'), studies), ['MR\\US', 'US']);
    assert.deepEqual(matching(parseMatchKey(MODALITIES, 'P?'), studies), ['PT\\SR']);
  });

  test('fuzzy PN: every word of the key is a case-insensitive prefix of some word of the name', () => {
    const names = ['Doe^John', 'DOE^JANE^M', 'Johnson^Al', 'Roe^Mary=山田^太郎', 'ADOE^X', 'Smith John', ''];
    const fuzzy = (value: string) => parseMatchKey(PN, value, { fuzzy: true });
    assert.deepEqual(matching(fuzzy('jo'), names), ['Doe^John', 'Johnson^Al', 'Smith John']);
    assert.deepEqual(matching(fuzzy('doe'), names), ['Doe^John', 'DOE^JANE^M']);
    assert.deepEqual(matching(fuzzy('doe jo'), names), ['Doe^John']);
    assert.deepEqual(matching(fuzzy('jo^doe'), names), ['Doe^John']);
    assert.deepEqual(matching(fuzzy('m'), names), ['DOE^JANE^M', 'Roe^Mary=山田^太郎']);
    assert.deepEqual(matching(fuzzy('山'), names), ['Roe^Mary=山田^太郎']);
    assert.deepEqual(matching(fuzzy('ohn'), names), []);
    assert.deepEqual(matching(fuzzy('j?n'), names), ['DOE^JANE^M']);
    assert.equal(fuzzy('^ =').matcher.kind, 'universal');
    // Fuzzy matching applies to PN only.
    assert.equal(parseMatchKey(LO, 'head', { fuzzy: true }).matcher.kind, 'single');
  });

  test('SQL conditions bind every value as a parameter', () => {
    const hostile = "x' OR 1=1 --";
    for (const attribute of [PN, LO, CS]) {
      const condition = toSqlCondition(parseMatchKey(attribute, `${hostile}*`), 'v')!;
      assert.ok(!condition.sql.includes(hostile) && !condition.sql.includes("OR 1=1"), condition.sql);
    }
    assert.deepEqual(matching(parseMatchKey(LO, hostile), ['a', hostile]), [hostile]);
  });
});

describe('queryable attributes', () => {
  test('lookup by keyword and by tag in its usual spellings', () => {
    assert.deepEqual(
      { ...attributeByKeyword('PatientName') },
      { keyword: 'PatientName', tag: '00100010', vr: 'PN', level: 'PATIENT', multiValued: false, matchable: true },
    );
    for (const tag of ['00100010', '(0010,0010)', '0010,0010', 'x00100010']) assert.equal(attributeByTag(tag)?.keyword, 'PatientName');
    assert.equal(lookupAttribute('0020000d')?.keyword, 'StudyInstanceUID');
    assert.equal(lookupAttribute('ModalitiesInStudy')?.multiValued, true);
    assert.equal(lookupAttribute('NoSuchThing'), undefined);
    assert.equal(lookupAttribute('QueryRetrieveLevel')?.matchable, false);
  });

  test('every attribute the issue lists is there, with unique tags', () => {
    const expected = [
      'PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex', 'StudyInstanceUID', 'StudyDate', 'StudyTime', 'AccessionNumber',
      'StudyID', 'StudyDescription', 'ReferringPhysicianName', 'ModalitiesInStudy', 'NumberOfStudyRelatedSeries',
      'NumberOfStudyRelatedInstances', 'NumberOfPatientRelatedStudies', 'NumberOfPatientRelatedSeries', 'NumberOfPatientRelatedInstances',
      'SeriesInstanceUID', 'Modality', 'SeriesNumber', 'SeriesDescription', 'BodyPartExamined', 'PerformedProcedureStepStartDate',
      'NumberOfSeriesRelatedInstances', 'SOPClassUID', 'SOPInstanceUID', 'InstanceNumber', 'NumberOfFrames', 'Rows', 'Columns',
      'AvailableTransferSyntaxUID', 'TransferSyntaxUID', 'SpecificCharacterSet', 'RetrieveAETitle', 'InstanceAvailability', 'QueryRetrieveLevel',
    ];
    for (const keyword of expected) assert.ok(attributeByKeyword(keyword), keyword);
    assert.equal(new Set(QUERY_ATTRIBUTES.map((a) => a.tag)).size, QUERY_ATTRIBUTES.length);
    assert.ok(QUERY_ATTRIBUTES.every((a) => /^[0-9A-F]{8}$/.test(a.tag)));
    const series = attributesUpTo('SERIES').map((a) => a.keyword);
    assert.ok(series.includes('PatientID') && series.includes('StudyDate') && series.includes('Modality'));
    assert.ok(!series.includes('SOPInstanceUID') && !series.includes('QueryRetrieveLevel'));
  });
});

describe('DICOM JSON', () => {
  test('builds PS3.18 F.2 elements sorted by tag', () => {
    const json = toDicomJson({
      StudyInstanceUID: '1.2.3',
      PatientName: 'Doe^John=山田^太郎',
      ModalitiesInStudy: 'CT\\MR',
      NumberOfStudyRelatedInstances: 12,
      SeriesNumber: '7',
      Rows: 512,
      StudyDate: '20260101',
      StudyTime: '101500',
      AccessionNumber: '',
      ReferringPhysicianName: null,
      StudyDescription: undefined,
      RetrieveURL: 'http://localhost/dicom-web/studies/1.2.3',
    }, { RetrieveURL: { tag: '00081190', vr: 'UR' } });
    assert.deepEqual(Object.keys(json), ['00080020', '00080030', '00080050', '00080061', '00080090', '00081190', '00100010', '0020000D', '00200011', '00201208', '00280010']);
    assert.deepEqual(json['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Doe^John', Ideographic: '山田^太郎' }] });
    assert.deepEqual(json['00080061'], { vr: 'CS', Value: ['CT', 'MR'] });
    assert.deepEqual(json['00201208'], { vr: 'IS', Value: [12] });
    assert.deepEqual(json['00200011'], { vr: 'IS', Value: [7] });
    assert.deepEqual(json['00280010'], { vr: 'US', Value: [512] });
    assert.deepEqual(json['00080020'], { vr: 'DA', Value: ['20260101'] });
    assert.deepEqual(json['0020000D'], { vr: 'UI', Value: ['1.2.3'] });
    assert.deepEqual(json['00080050'], { vr: 'SH' });
    assert.deepEqual(json['00080090'], { vr: 'PN' });
    assert.deepEqual(json['00081190'], { vr: 'UR', Value: ['http://localhost/dicom-web/studies/1.2.3'] });
  });

  test('an attribute without a known tag is refused', () => {
    assert.throws(() => toDicomJson({ PatientComments: 'x' }), UnknownAttributeError);
  });
});

test('a wildcard key holding a hyphen matches in memory as in SQL (found by fuzzing)', () => {
  const key = parseMatchKey(LO, 'CT-ABDOMEN*');
  assert.equal(matches(key, 'CT-ABDOMEN W/O'), true);
  assert.equal(matches(key, 'CTXABDOMEN'), false);
  assert.equal(matches(parseMatchKey(PN, 'SMITH-JONES', { fuzzy: true }), 'SMITH-JONES^ANNA'), true);
});
