import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { Archive } from '../../main/core/store/archive.js';
import { openDatabase, type Db } from '../../main/core/store/database.js';
import { buildQuery, explainQuery, queryArchive } from '../../main/core/store/query.js';
import type { QueryMatch, QueryRequest } from '../../main/core/store/query-types.js';
import { InvalidMatchKeyError } from '../../main/core/dicom/matching.js';
import { makeInstance, makeMultiFrame, SOP_CLASS_UIDS, type InstanceOptions } from '../support/instance.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

const silent = pino({ level: 'silent' });
const noLimits = { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false };
const ctx = { callingAe: 'MODALITY1', peer: '127.0.0.1:40000' };
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const IMPLICIT_LE = '1.2.840.10008.1.2';

interface SeriesPlan {
  modality: string;
  seriesNumber: number;
  instances: number;
  options?: InstanceOptions;
}

interface StudyPlan {
  key: string;
  patient: Pick<InstanceOptions, 'patientName' | 'patientId' | 'patientBirthDate' | 'patientSex'>;
  study: InstanceOptions;
  series: SeriesPlan[];
}

/**
 * Four studies of three patients:
 *   Doe^John   PID-1: A (20260110 0900, CT×2 series), B (20260120 1400, MR + CT)
 *   Roe^Jane   PID-2: C (20251231 2330, US, one instance without InstanceNumber)
 *   Müller^Jürgen PID-3: D (no date, OT multi-frame, implicit VR)
 */
const PLANS: StudyPlan[] = [
  {
    key: 'A',
    patient: { patientName: 'Doe^John', patientId: 'PID-1', patientBirthDate: '19700102', patientSex: 'M' },
    study: { studyDate: '20260110', studyTime: '090000', accession: 'ACC-A', studyDescription: 'CT Head' },
    series: [
      { modality: 'CT', seriesNumber: 2, instances: 3, options: { extra: { BodyPartExamined: 'HEAD' } } },
      { modality: 'CT', seriesNumber: 1, instances: 2, options: { extra: { BodyPartExamined: 'HEAD' } } },
    ],
  },
  {
    key: 'B',
    patient: { patientName: 'Doe^John', patientId: 'PID-1', patientBirthDate: '19700102', patientSex: 'M' },
    study: { studyDate: '20260120', studyTime: '140000', accession: 'ACC-B', studyDescription: 'MR Knee' },
    series: [
      { modality: 'MR', seriesNumber: 1, instances: 2, options: { extra: { BodyPartExamined: 'KNEE' } } },
      { modality: 'CT', seriesNumber: 5, instances: 1 },
    ],
  },
  {
    key: 'C',
    patient: { patientName: 'Roe^Jane', patientId: 'PID-2', patientBirthDate: '19800303', patientSex: 'F' },
    study: { studyDate: '20251231', studyTime: '233000', accession: 'ACC-C', studyDescription: 'US Abdomen' },
    series: [{ modality: 'US', seriesNumber: 1, instances: 3 }],
  },
  {
    key: 'D',
    patient: { patientName: 'Müller^Jürgen', patientId: 'PID-3', patientBirthDate: '', patientSex: 'M' },
    study: { accession: 'ACC-D', studyDescription: 'Scan', extra: { StudyDate: undefined, StudyTime: undefined } },
    series: [{ modality: 'OT', seriesNumber: 1, instances: 1 }],
  },
];

interface Ingested {
  studies: Record<string, string>;
  /** series UIDs by study key, in plan order */
  series: Record<string, string[]>;
  /** instance UIDs by series UID, in instance-number order */
  instances: Record<string, string[]>;
}

async function ingestPlans(archive: Archive): Promise<Ingested> {
  const out: Ingested = { studies: {}, series: {}, instances: {} };
  for (const plan of PLANS) {
    const studyUid = newUid();
    out.studies[plan.key] = studyUid;
    out.series[plan.key] = [];
    for (const series of plan.series) {
      const seriesUid = newUid();
      out.series[plan.key].push(seriesUid);
      out.instances[seriesUid] = [];
      for (let n = 1; n <= series.instances; n++) {
        const sopInstanceUid = newUid();
        out.instances[seriesUid].push(sopInstanceUid);
        const options: InstanceOptions = {
          ...plan.patient, ...plan.study, ...series.options, studyUid, seriesUid, sopInstanceUid,
          modality: series.modality, seriesNumber: series.seriesNumber, instanceNumber: n, rows: 8, columns: 8,
          extra: { ...plan.study.extra, ...series.options?.extra },
        };
        let bytes: Buffer;
        if (plan.key === 'D') bytes = makeMultiFrame({ ...options, frames: 3, transferSyntax: IMPLICIT_LE });
        else if (plan.key === 'C' && n === 3) bytes = makeInstance({ ...options, extra: { ...options.extra, InstanceNumber: undefined } });
        else bytes = makeInstance(options);
        await archive.ingest(Readable.from([bytes]), ctx);
      }
    }
  }
  return out;
}

const uids = (matches: QueryMatch[], keyword: string) => matches.map((m) => m[keyword]);

describe('archive queries', () => {
  let dir: string;
  let archive: Archive;
  let data: Ingested;
  const q = (request: QueryRequest) => queryArchive(indexDb(archive), request);
  const studies = (keys: Record<string, string>, extra: Partial<QueryRequest> = {}) =>
    uids(q({ level: 'STUDY', keys, ...extra }), 'StudyInstanceUID');
  const study = (...keys: string[]) => keys.map((k) => data.studies[k]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-query-'));
    archive = (await Archive.open({ dataDir: dir, limits: noLimits, logger: silent })).archive;
    data = await ingestPlans(archive);
  });
  after(async () => {
    await archive.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('STUDY: all studies, most recent StudyDate/StudyTime first, undated last', () => {
    assert.deepEqual(studies({}), study('B', 'A', 'C', 'D'));
  });

  test('STUDY: matches carry every study and patient attribute, computed ones included', () => {
    const [b] = q({ level: 'STUDY', keys: { StudyInstanceUID: data.studies.B } });
    assert.deepEqual(b, {
      PatientName: 'Doe^John', PatientID: 'PID-1', PatientBirthDate: '19700102', PatientSex: 'M',
      NumberOfPatientRelatedStudies: 2, NumberOfPatientRelatedSeries: 4, NumberOfPatientRelatedInstances: 8,
      StudyDate: '20260120', StudyTime: '140000', AccessionNumber: 'ACC-B', ModalitiesInStudy: 'CT\\MR',
      ReferringPhysicianName: '', StudyDescription: 'MR Knee', StudyInstanceUID: data.studies.B, StudyID: '1',
      NumberOfStudyRelatedSeries: 2, NumberOfStudyRelatedInstances: 3, SpecificCharacterSet: '', InstanceAvailability: 'ONLINE',
    });
    const [d] = q({ level: 'STUDY', keys: { PatientID: 'PID-3' } });
    assert.equal(d.PatientName, 'Müller^Jürgen');
    assert.equal(d.SpecificCharacterSet, 'ISO_IR 192');
    assert.equal(d.StudyDate, '');
  });

  test('STUDY: single value, wildcard and case-insensitive PN keys', () => {
    assert.deepEqual(studies({ PatientID: 'PID-1' }), study('B', 'A'));
    assert.deepEqual(studies({ PatientName: 'doe*' }), study('B', 'A'));
    assert.deepEqual(studies({ PatientName: 'DOE^JOHN' }), study('B', 'A'));
    assert.deepEqual(studies({ PatientName: '?oe^*' }), study('B', 'A', 'C'));
    assert.deepEqual(studies({ PatientName: 'müller*' }), study('D'));
    assert.deepEqual(studies({ AccessionNumber: 'ACC-C' }), study('C'));
    assert.deepEqual(studies({ StudyDescription: 'ct*' }), [], 'LO matching is case-sensitive');
    assert.deepEqual(studies({ StudyDescription: 'CT*' }), study('A'));
    assert.deepEqual(studies({ PatientID: 'PID-9' }), []);
  });

  test('STUDY: date and time ranges, open on either side; undated studies match no range', () => {
    assert.deepEqual(studies({ StudyDate: '20260101-' }), study('B', 'A'));
    assert.deepEqual(studies({ StudyDate: '-20260110' }), study('A', 'C'));
    assert.deepEqual(studies({ StudyDate: '20251231-20260115' }), study('A', 'C'));
    assert.deepEqual(studies({ StudyDate: '20260120' }), study('B'));
    assert.deepEqual(studies({ StudyTime: '09-14' }), study('B', 'A'));
    assert.deepEqual(studies({ StudyTime: '2330-' }), study('C'));
    assert.deepEqual(studies({ StudyDate: '20260101-', StudyTime: '-1000' }), study('A'));
  });

  test('STUDY: ModalitiesInStudy matches studies whose set contains any of the values', () => {
    assert.deepEqual(studies({ ModalitiesInStudy: 'MR' }), study('B'));
    assert.deepEqual(studies({ ModalitiesInStudy: 'CT' }), study('B', 'A'));
    assert.deepEqual(studies({ ModalitiesInStudy: 'MR\\US' }), study('B', 'C'));
    assert.deepEqual(studies({ ModalitiesInStudy: 'CT', StudyDate: '20260101-20260115' }), study('A'));
  });

  test('STUDY: keys of lower levels ask for a related series or instance', () => {
    assert.deepEqual(studies({ Modality: 'US' }), study('C'));
    assert.deepEqual(studies({ BodyPartExamined: 'KNEE' }), study('B'));
    assert.deepEqual(studies({ Modality: 'MR', BodyPartExamined: 'HEAD' }), [], 'both on the same series');
    const instanceOfC = data.instances[data.series.C[0]][1];
    assert.deepEqual(studies({ SOPInstanceUID: instanceOfC }), study('C'));
    assert.deepEqual(studies({ SOPClassUID: SOP_CLASS_UIDS.multiFrameGrayscaleWordSc }), study('D'));
    assert.deepEqual(studies({ Modality: 'CT', SeriesNumber: '5' }), study('B'));
    assert.deepEqual(studies({ Modality: 'CT', InstanceNumber: '3' }), study('A'), 'series and instance keys on one instance');
  });

  test('STUDY: UID lists', () => {
    assert.deepEqual(studies({ StudyInstanceUID: `${data.studies.C}\\${data.studies.A}` }), study('A', 'C'));
    assert.deepEqual(studies({ StudyInstanceUID: `${data.studies.D},${data.studies.B}` }), study('B', 'D'));
  });

  test('STUDY: fuzzy PN matching (QIDO fuzzymatching=true)', () => {
    assert.deepEqual(studies({ PatientName: 'jo' }, { fuzzy: true }), study('B', 'A'));
    assert.deepEqual(studies({ PatientName: 'ja ro' }, { fuzzy: true }), study('C'));
    assert.deepEqual(studies({ PatientName: 'Jür' }, { fuzzy: true }), study('D'));
    assert.deepEqual(studies({ PatientName: 'ohn' }, { fuzzy: true }), []);
    assert.deepEqual(studies({ PatientName: 'jo' }), [], 'without fuzzy matching, single value matching applies');
  });

  test('STUDY: limit and offset page through the same order', () => {
    assert.deepEqual(studies({}, { limit: 2 }), study('B', 'A'));
    assert.deepEqual(studies({}, { limit: 2, offset: 1 }), study('A', 'C'));
    assert.deepEqual(studies({}, { offset: 3 }), study('D'));
    assert.deepEqual(studies({}, { offset: 10 }), []);
    assert.deepEqual(studies({}, { limit: 0 }), []);
    assert.throws(() => studies({}, { limit: -1 }), RangeError);
    assert.throws(() => studies({}, { offset: 1.5 }), RangeError);
  });

  test('SERIES: within a study, by SeriesNumber, with series and study attributes', () => {
    const series = q({ level: 'SERIES', keys: { StudyInstanceUID: data.studies.A } });
    assert.deepEqual(uids(series, 'SeriesInstanceUID'), [data.series.A[1], data.series.A[0]]);
    assert.deepEqual(uids(series, 'SeriesNumber'), [1, 2]);
    assert.deepEqual(uids(series, 'NumberOfSeriesRelatedInstances'), [2, 3]);
    assert.equal(series[0].Modality, 'CT');
    assert.equal(series[0].BodyPartExamined, 'HEAD');
    assert.equal(series[0].SeriesDescription, 'Test series');
    assert.equal(series[0].StudyInstanceUID, data.studies.A);
    assert.equal(series[0].PatientID, 'PID-1');
    assert.equal(series[0].ModalitiesInStudy, 'CT');
    assert.equal(series[0].NumberOfStudyRelatedInstances, 5);
    assert.ok(!('SOPInstanceUID' in series[0]));
  });

  test('SERIES: across studies, constrained by keys of higher levels', () => {
    assert.deepEqual(uids(q({ level: 'SERIES', keys: { Modality: 'CT' } }), 'SeriesInstanceUID'), [data.series.B[1], data.series.A[1], data.series.A[0]]);
    assert.deepEqual(uids(q({ level: 'SERIES', keys: { PatientID: 'PID-2' } }), 'SeriesInstanceUID'), data.series.C);
    assert.deepEqual(uids(q({ level: 'SERIES', keys: { ModalitiesInStudy: 'MR', Modality: 'CT' } }), 'SeriesInstanceUID'), [data.series.B[1]]);
    assert.deepEqual(uids(q({ level: 'SERIES', keys: { StudyInstanceUID: data.studies.C, Modality: 'CT' } }), 'SeriesInstanceUID'), []);
    const withInstanceKey = q({ level: 'SERIES', keys: { SOPInstanceUID: data.instances[data.series.B[0]][0] } });
    assert.deepEqual(uids(withInstanceKey, 'SeriesInstanceUID'), [data.series.B[0]]);
  });

  test('IMAGE: within a series, by InstanceNumber, with instance attributes', () => {
    const [seriesUid] = data.series.A;
    const images = q({ level: 'IMAGE', keys: { StudyInstanceUID: data.studies.A, SeriesInstanceUID: seriesUid } });
    assert.deepEqual(uids(images, 'SOPInstanceUID'), data.instances[seriesUid]);
    assert.deepEqual(uids(images, 'InstanceNumber'), [1, 2, 3]);
    const first = images[0];
    assert.equal(first.SOPClassUID, SOP_CLASS_UIDS.ctImage);
    assert.equal(first.TransferSyntaxUID, EXPLICIT_LE);
    assert.equal(first.AvailableTransferSyntaxUID, EXPLICIT_LE);
    assert.equal(first.Rows, 8);
    assert.equal(first.Columns, 8);
    assert.equal(first.NumberOfFrames, null);
    assert.equal(first.SeriesInstanceUID, seriesUid);
    assert.equal(first.PatientName, 'Doe^John');
    assert.equal(first.InstanceAvailability, 'ONLINE');

    const [multiFrame] = q({ level: 'IMAGE', keys: { PatientID: 'PID-3' } });
    assert.equal(multiFrame.NumberOfFrames, 3);
    assert.equal(multiFrame.TransferSyntaxUID, IMPLICIT_LE);
  });

  test('IMAGE: an instance without InstanceNumber comes last', () => {
    const images = q({ level: 'IMAGE', keys: { SeriesInstanceUID: data.series.C[0] } });
    assert.deepEqual(uids(images, 'InstanceNumber'), [1, 2, null]);
  });

  test('IMAGE: hierarchy keys must agree; UID lists and instance keys', () => {
    assert.deepEqual(q({ level: 'IMAGE', keys: { StudyInstanceUID: data.studies.A, SeriesInstanceUID: data.series.B[0] } }), []);
    const wanted = [data.instances[data.series.B[0]][1], data.instances[data.series.A[1]][0]];
    assert.deepEqual(uids(q({ level: 'IMAGE', keys: { SOPInstanceUID: wanted.join('\\') } }), 'SOPInstanceUID'), wanted);
    assert.equal(q({ level: 'IMAGE', keys: { StudyDate: '20260110', InstanceNumber: '2' } }).length, 2);
    assert.equal(q({ level: 'IMAGE', keys: {}, limit: 5, offset: 9 }).length, 3);
    assert.equal(q({ level: 'IMAGE', keys: {} }).length, 12);
  });

  test('PATIENT: one match per PatientID with patient-related counts', () => {
    const patients = q({ level: 'PATIENT', keys: {} });
    assert.deepEqual(uids(patients, 'PatientID'), ['PID-1', 'PID-2', 'PID-3']);
    assert.deepEqual(patients[0], {
      PatientID: 'PID-1', PatientName: 'Doe^John', PatientBirthDate: '19700102', PatientSex: 'M', SpecificCharacterSet: '',
      NumberOfPatientRelatedStudies: 2, NumberOfPatientRelatedSeries: 4, NumberOfPatientRelatedInstances: 8, InstanceAvailability: 'ONLINE',
    });
    assert.deepEqual(uids(q({ level: 'PATIENT', keys: { PatientName: 'roe*' } }), 'PatientID'), ['PID-2']);
    assert.deepEqual(uids(q({ level: 'PATIENT', keys: { NumberOfPatientRelatedStudies: '2' } }), 'PatientID'), ['PID-1']);
    assert.deepEqual(uids(q({ level: 'PATIENT', keys: { PatientSex: 'M' }, offset: 1 }), 'PatientID'), ['PID-3']);
    // Counts cover all of the patient's studies even when a study key narrows which ones matched.
    const [doe] = q({ level: 'PATIENT', keys: { StudyDate: '20260120' } });
    assert.equal(doe.NumberOfPatientRelatedStudies, 2);
  });

  test('keys by tag; control attributes and empty unknown return keys are ignored', () => {
    assert.deepEqual(studies({ '00100020': 'PID-2' }), study('C'));
    assert.deepEqual(studies({ QueryRetrieveLevel: 'STUDY', SpecificCharacterSet: 'ISO_IR 100', RetrieveAETitle: 'X', PatientComments: '' }), study('B', 'A', 'C', 'D'));
  });

  test('invalid keys are refused with InvalidMatchKeyError naming attribute and value', () => {
    const refused = (keys: Record<string, string>, pattern: RegExp) =>
      assert.throws(() => studies(keys), (e: unknown) => e instanceof InvalidMatchKeyError && pattern.test(e.message));
    refused({ StudyDate: '2026-01' }, /^StudyDate matching key "2026-01"/);
    refused({ StudyDate: '20260201-20260101' }, /after its end/);
    refused({ StudyInstanceUID: '1.2.3\\1.2.x' }, /StudyInstanceUID .* holds a UID "1.2.x"/);
    refused({ PatientComments: 'x' }, /PatientComments .* not an attribute the archive can match on/);
    refused({ SeriesNumber: 'one' }, /not an integer/);
  });

  test('values are bound, never spliced into the SQL', () => {
    const built = buildQuery({ level: 'STUDY', keys: { PatientName: "x' OR '1'='1*", StudyDate: '20260101-' } });
    assert.ok(!built.sql.includes("'1'='1"), built.sql);
    assert.deepEqual(built.params, ["x' OR '1'='1%", '20260101', -1, 0]);
    assert.deepEqual(studies({ PatientName: "x' OR '1'='1*" }), []);
  });
});

describe('archive queries at 10,000 studies', () => {
  let dir: string;
  let db: Db;
  const STUDIES = 10_000;
  const NAMES = ['SMITH', 'JONES', 'DOE', 'GARCIA', 'NGUYEN', 'KIM', 'BROWN', 'TAYLOR', 'WILSON', 'LEE'];
  const MODALITIES = ['CT', 'MR', 'US', 'CR'];
  const dateOf = (s: number) => new Date(Date.UTC(2020, 0, 1) + ((s * 7919) % 2000) * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-edge-query-10k-'));
    db = openDatabase(join(dir, 'index.sqlite'));
    const insertStudy = db.prepare(`INSERT INTO studies (study_uid, patient_name, patient_id, study_date, study_time,
      modalities_in_study, num_series, num_instances, received_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, 10, ?, ?)`);
    const insertSeries = db.prepare('INSERT INTO series (series_uid, study_uid, modality, series_number, num_instances, received_at) VALUES (?, ?, ?, 1, 10, ?)');
    const insertInstance = db.prepare(`INSERT INTO instances (sop_instance_uid, series_uid, study_uid, sop_class_uid, instance_number,
      transfer_syntax_uid, size_bytes, sha256, received_at, path) VALUES (?, ?, ?, ?, ?, ?, 1000, '', ?, ?)`);
    db.transaction(() => {
      for (let s = 0; s < STUDIES; s++) {
        const studyUid = `2.25.${s + 1}`;
        const seriesUid = `${studyUid}.1`;
        const modality = MODALITIES[s % 4];
        insertStudy.run(studyUid, `${NAMES[s % 10]}^PATIENT${s}`, `PID${s % 3000}`, dateOf(s), String(100000 + (s % 1300)), modality, s, s);
        insertSeries.run(seriesUid, studyUid, modality, s);
        for (let i = 1; i <= 10; i++) {
          insertInstance.run(`${seriesUid}.${i}`, seriesUid, studyUid, SOP_CLASS_UIDS.ctImage, i, EXPLICIT_LE, s, `${studyUid}/${i}`);
        }
      }
    })();
  });
  after(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  const plan = (request: QueryRequest) => explainQuery(db, request).join('\n');

  test('all rows are indexed and queryable', () => {
    assert.equal(queryArchive(db, { level: 'STUDY', keys: {}, limit: STUDIES + 1 }).length, STUDIES);
    assert.equal(queryArchive(db, { level: 'IMAGE', keys: { StudyInstanceUID: '2.25.77' } }).length, 10);
    assert.equal(queryArchive(db, { level: 'PATIENT', keys: {} }).length, 3000);
  });

  test('most recent 100 studies: read in index order, no sort', () => {
    const request: QueryRequest = { level: 'STUDY', keys: {}, limit: 100 };
    const text = plan(request);
    assert.match(text, /SCAN st USING INDEX studies_date_time_received/);
    assert.doesNotMatch(text, /TEMP B-TREE/);
    const got = queryArchive(db, request);
    const expected = Array.from({ length: STUDIES }, (_, s) => s)
      .sort((a, b) => dateOf(b).localeCompare(dateOf(a)) || (100000 + (b % 1300)) - (100000 + (a % 1300)) || b - a)
      .slice(0, 100)
      .map((s) => `2.25.${s + 1}`);
    assert.deepEqual(uids(got, 'StudyInstanceUID'), expected);
  });

  test('PatientID uses its index', () => {
    assert.match(plan({ level: 'STUDY', keys: { PatientID: 'PID42' } }), /SEARCH st USING INDEX studies_patient_id \(patient_id=\?\)/);
    assert.equal(queryArchive(db, { level: 'STUDY', keys: { PatientID: 'PID42' } }).length, 4);
  });

  test('PatientName prefix uses the NOCASE index', () => {
    const request: QueryRequest = { level: 'STUDY', keys: { PatientName: 'smith^patient1*' }, limit: 100 };
    assert.match(plan(request), /SEARCH st USING INDEX studies_patient_name \(patient_name>\? AND patient_name<\?\)/);
    const got = queryArchive(db, request);
    assert.equal(got.length, 100);
    assert.ok(got.every((m) => String(m.PatientName).startsWith('SMITH^PATIENT1')));
    assert.match(plan({ level: 'STUDY', keys: { PatientName: 'SMITH^PATIENT10' } }), /USING INDEX studies_patient_name \(patient_name=\?\)/);
  });

  test('StudyDate range with ModalitiesInStudy uses the date index and probes series per study', () => {
    const request: QueryRequest = { level: 'STUDY', keys: { StudyDate: '20210101-20210131', ModalitiesInStudy: 'CT\\MR' } };
    const text = plan(request);
    assert.match(text, /SEARCH st USING INDEX studies_date_time_received \(study_date>\? AND study_date<\?\)/);
    assert.match(text, /SEARCH m USING COVERING INDEX series_study_modality \(study_uid=\? AND modality=\?\)/);
    const got = queryArchive(db, request);
    const expected = Array.from({ length: STUDIES }, (_, s) => s).filter(
      (s) => dateOf(s) >= '20210101' && dateOf(s) <= '20210131' && s % 4 < 2,
    );
    assert.equal(got.length, expected.length);
    assert.ok(got.length > 0);
  });

  test('series and instances of one study use their indexes', () => {
    assert.match(plan({ level: 'SERIES', keys: { StudyInstanceUID: '2.25.5' } }), /series_study_modality \(study_uid=\?\)/);
    assert.match(
      plan({ level: 'IMAGE', keys: { StudyInstanceUID: '2.25.5', SeriesInstanceUID: '2.25.5.1' } }),
      /SEARCH i USING INDEX instances_series \(series_uid=\?\)/,
    );
  });
});
