/**
 * The archive's query engine, shared by C-FIND (dimse/) and QIDO-RS (web/): matching keys (dicom/matching.ts)
 * become one parameterised SQL statement over the index. Keys of any level may be given at any level:
 * keys of the query level and above constrain the rows directly, keys of lower levels ask for a related
 * entity (a STUDY query with Modality=CT returns studies that have a CT series).
 */
import type { Statement } from 'better-sqlite3';
import { attributesUpTo, lookupAttribute, type QueryLevel } from '../dicom/keywords.js';
import { InvalidMatchKeyError, parseMatchKey, toSqlCondition, type SqlCondition } from '../dicom/matching.js';
import type { Db } from './database.js';
import type { QueryMatch, QueryRequest } from './query-types.js';

type Table = 'studies' | 'series' | 'instances';

interface Column {
  table: Table;
  /** SQL expression over the table's alias. */
  expr: (alias: string) => string;
}

const column = (table: Table, name: string): Column => ({ table, expr: (alias) => `${alias}.${name}` });
/** A count the archive destination may know to be larger than the rows here (cloud_num_*, schema 2). */
const knownCount = (table: Table, name: string): Column => ({
  table,
  expr: (alias) => `MAX(${alias}.${name}, COALESCE(${alias}.cloud_${name}, 0))`,
});
const patientTotal = (aggregate: string): Column => ({
  table: 'studies',
  expr: (alias) => `(SELECT ${aggregate} FROM studies p WHERE p.patient_id = ${alias}.patient_id)`,
});

/** Where each queryable keyword lives in the index (tables in database.ts). */
const COLUMNS: Readonly<Record<string, Column>> = {
  PatientName: column('studies', 'patient_name'),
  PatientID: column('studies', 'patient_id'),
  PatientBirthDate: column('studies', 'patient_birth_date'),
  PatientSex: column('studies', 'patient_sex'),
  NumberOfPatientRelatedStudies: patientTotal('COUNT(*)'),
  NumberOfPatientRelatedSeries: patientTotal('SUM(p.num_series)'),
  NumberOfPatientRelatedInstances: patientTotal('SUM(MAX(p.num_instances, COALESCE(p.cloud_num_instances, 0)))'),
  StudyInstanceUID: column('studies', 'study_uid'),
  StudyDate: column('studies', 'study_date'),
  StudyTime: column('studies', 'study_time'),
  AccessionNumber: column('studies', 'accession_number'),
  StudyID: column('studies', 'study_id'),
  StudyDescription: column('studies', 'study_description'),
  ReferringPhysicianName: column('studies', 'referring_physician_name'),
  // Returned from the study row; matched against the series rows (see modalitiesCondition).
  ModalitiesInStudy: column('studies', 'modalities_in_study'),
  NumberOfStudyRelatedSeries: knownCount('studies', 'num_series'),
  NumberOfStudyRelatedInstances: knownCount('studies', 'num_instances'),
  SeriesInstanceUID: column('series', 'series_uid'),
  Modality: column('series', 'modality'),
  SeriesNumber: column('series', 'series_number'),
  SeriesDescription: column('series', 'series_description'),
  BodyPartExamined: column('series', 'body_part_examined'),
  PerformedProcedureStepStartDate: column('series', 'pps_start_date'),
  NumberOfSeriesRelatedInstances: knownCount('series', 'num_instances'),
  SOPClassUID: column('instances', 'sop_class_uid'),
  SOPInstanceUID: column('instances', 'sop_instance_uid'),
  InstanceNumber: column('instances', 'instance_number'),
  NumberOfFrames: column('instances', 'number_of_frames'),
  Rows: column('instances', 'rows'),
  Columns: column('instances', 'columns'),
  TransferSyntaxUID: column('instances', 'transfer_syntax_uid'),
  AvailableTransferSyntaxUID: column('instances', 'transfer_syntax_uid'),
};

const ALIAS: Record<Table, string> = { studies: 'st', series: 'se', instances: 'i' };
const DEPTH: Record<Table, number> = { studies: 1, series: 2, instances: 3 };
const LEVEL_DEPTH: Record<QueryLevel, number> = { PATIENT: 1, STUDY: 1, SERIES: 2, IMAGE: 3 };

/** Computed after the statement, per distinct patient, so they count every study of the patient. */
const PATIENT_TOTALS = ['NumberOfPatientRelatedStudies', 'NumberOfPatientRelatedSeries', 'NumberOfPatientRelatedInstances'];

const STUDY_ORDER = 'st.study_date DESC, st.study_time DESC, st.received_at DESC, st.rowid DESC';
const SERIES_ORDER = 'se.series_number ASC NULLS LAST, se.rowid ASC';
const INSTANCE_ORDER = 'i.instance_number ASC NULLS LAST, i.rowid ASC';

const FROM: Record<QueryLevel, string> = {
  PATIENT: 'studies st',
  STUDY: 'studies st',
  SERIES: 'series se JOIN studies st ON st.study_uid = se.study_uid',
  IMAGE: 'instances i JOIN series se ON se.series_uid = i.series_uid JOIN studies st ON st.study_uid = se.study_uid',
};

const ORDER: Record<QueryLevel, string> = {
  PATIENT: 'st.patient_id',
  STUDY: STUDY_ORDER,
  SERIES: `${STUDY_ORDER}, ${SERIES_ORDER}`,
  IMAGE: `${STUDY_ORDER}, ${SERIES_ORDER}, ${INSTANCE_ORDER}`,
};

export interface BuiltQuery {
  sql: string;
  params: (string | number)[];
}

/**
 * Runs a query: matches carry every attribute of the level and the levels above it, by keyword, including
 * the computed ones (ModalitiesInStudy, NumberOf*Related*), SpecificCharacterSet (of the stored study; the
 * values themselves are decoded text) and InstanceAvailability: ONLINE when every instance is here, NEARLINE
 * when some are only in the cloud archive, UNAVAILABLE for a local instance whose file is gone. Counts and
 * ModalitiesInStudy include what the archive reported. Throws InvalidMatchKeyError for a bad key.
 */
export function queryArchive(db: Db, request: QueryRequest): QueryMatch[] {
  const built = buildQuery(request);
  const rows = prepared(db, built.sql).all(...built.params) as Record<string, string | number | null>[];
  const totals = patientTotals(db);
  return rows.map((row) => toMatch(request.level, row, totals));
}

/** The plan SQLite chooses for a request, one line per step (for tests and benchmarks). */
export function explainQuery(db: Db, request: QueryRequest): string[] {
  const built = buildQuery(request);
  const plan = db.prepare(`EXPLAIN QUERY PLAN ${built.sql}`).all(...built.params) as { detail: string }[];
  return plan.map((step) => step.detail);
}

/** Translates a request into SQL; exported for tests and diagnostics. */
export function buildQuery(request: QueryRequest): BuiltQuery {
  const level = request.level;
  if (!(level in FROM)) throw new InvalidMatchKeyError('QueryRetrieveLevel', String(level), 'is not PATIENT, STUDY, SERIES or IMAGE');
  const where = whereConditions(request);
  const select = selectList(level);
  const whereSql = where.length > 0 ? `WHERE ${where.map((c) => c.sql).join(' AND ')}` : '';
  const groupBy = level === 'PATIENT' ? 'GROUP BY st.patient_id' : '';
  const sql = `SELECT ${select} FROM ${FROM[level]} ${whereSql} ${groupBy} ORDER BY ${ORDER[level]} LIMIT ? OFFSET ?`;
  const params = [...where.flatMap((c) => c.params), count('limit', request.limit, -1), count('offset', request.offset, 0)];
  return { sql: sql.replace(/ {2,}/g, ' '), params };
}

function count(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  return value;
}

function selectList(level: QueryLevel): string {
  const parts: string[] = [];
  const attributes = attributesUpTo(level);
  for (const attribute of attributes) {
    if (PATIENT_TOTALS.includes(attribute.keyword) || attribute.keyword === 'AvailableTransferSyntaxUID') continue;
    const where = COLUMNS[attribute.keyword];
    parts.push(`${where.expr(ALIAS[where.table])} AS ${attribute.keyword}`);
  }
  parts.push('st.specific_character_set AS SpecificCharacterSet');
  if (level === 'PATIENT') {
    parts.push('MAX(st.received_at) AS _latest'); // other columns come from the latest study
    parts.push(`${patientTotal('SUM(p.num_local_instances)').expr('st')} AS _localCount`,
      `${patientTotal('SUM(MAX(p.num_instances, COALESCE(p.cloud_num_instances, 0)))').expr('st')} AS _knownCount`);
  }
  if (level === 'IMAGE') parts.push('i.file_missing AS _fileMissing', 'i.local AS _local');
  if (level === 'SERIES') parts.push(`se.num_local_instances AS _localCount, ${knownCount('series', 'num_instances').expr('se')} AS _knownCount`);
  if (level === 'STUDY') parts.push(`st.num_local_instances AS _localCount, ${knownCount('studies', 'num_instances').expr('st')} AS _knownCount`);
  if (attributes.some((a) => a.keyword === 'ModalitiesInStudy')) parts.push('st.cloud_modalities AS _cloudModalities');
  return parts.join(', ');
}

function whereConditions(request: QueryRequest): SqlCondition[] {
  const depth = LEVEL_DEPTH[request.level];
  const direct: SqlCondition[] = [];
  const below: Partial<Record<Table, SqlCondition[]>> = {};
  const modalities: Array<[SqlCondition, SqlCondition]> = [];
  // Sorted so that the same set of keys always gives the same SQL text (and a cached statement).
  for (const name of Object.keys(request.keys).sort()) {
    const value = request.keys[name] ?? '';
    const attribute = lookupAttribute(name);
    if (!attribute) {
      if (value.trim() === '') continue; // a return key we do not hold: nothing to match
      throw new InvalidMatchKeyError(name, value, 'is not an attribute the archive can match on');
    }
    if (!attribute.matchable) continue;
    const key = parseMatchKey(attribute, value, { fuzzy: request.fuzzy });
    const where = COLUMNS[attribute.keyword];
    if (attribute.keyword === 'ModalitiesInStudy') {
      const condition = toSqlCondition(key, 'm.modality');
      const cloud = toSqlCondition(key, 'm.value');
      if (condition && cloud) modalities.push([condition, cloud]);
      continue;
    }
    if (DEPTH[where.table] <= depth) {
      const condition = toSqlCondition(key, where.expr(ALIAS[where.table]));
      if (condition) direct.push(condition);
    } else {
      const condition = toSqlCondition(key, where.expr(`x${where.table === 'series' ? 's' : 'i'}`));
      if (condition) (below[where.table] ??= []).push(condition);
    }
  }
  for (const [series, cloud] of modalities) {
    // A modality of a series here, or one the archive reported for the study (its series may not be here).
    direct.push({
      sql: `(EXISTS (SELECT 1 FROM series m WHERE m.study_uid = st.study_uid AND ${series.sql})
        OR EXISTS (SELECT 1 FROM json_each(st.cloud_modalities) m WHERE ${cloud.sql}))`,
      params: [...series.params, ...cloud.params],
    });
  }
  if (request.location === 'local') direct.push({ sql: LOCAL_CONDITION[request.level], params: [] });
  const related = relatedCondition(depth, below.series ?? [], below.instances ?? []);
  if (related) direct.push(related);
  return direct;
}

/** Keys of levels below the query level: the entity must have a related series/instance matching them all. */
function relatedCondition(depth: number, series: SqlCondition[], instances: SqlCondition[]): SqlCondition | undefined {
  if (series.length === 0 && instances.length === 0) return undefined;
  const all = [...series, ...instances];
  const filters = all.map((c) => c.sql).join(' AND ');
  const params = all.flatMap((c) => c.params);
  if (depth === 2) {
    return { sql: `EXISTS (SELECT 1 FROM instances xi WHERE xi.series_uid = se.series_uid AND ${filters})`, params };
  }
  if (instances.length === 0) {
    return { sql: `EXISTS (SELECT 1 FROM series xs WHERE xs.study_uid = st.study_uid AND ${filters})`, params };
  }
  const join = series.length > 0 ? ' JOIN series xs ON xs.series_uid = xi.series_uid' : '';
  return { sql: `EXISTS (SELECT 1 FROM instances xi${join} WHERE xi.study_uid = st.study_uid AND ${filters})`, params };
}

interface PatientTotals {
  studies: number;
  series: number;
  instances: number;
}

function patientTotals(db: Db): (patientId: string) => PatientTotals {
  const statement = prepared(
    db,
    'SELECT COUNT(*) AS studies, COALESCE(SUM(num_series), 0) AS series, COALESCE(SUM(num_instances), 0) AS instances FROM studies WHERE patient_id = ?',
  );
  const seen = new Map<string, PatientTotals>();
  return (patientId) => {
    let totals = seen.get(patientId);
    if (!totals) {
      totals = statement.get(patientId) as PatientTotals;
      seen.set(patientId, totals);
    }
    return totals;
  };
}

/** Entities with a local copy: a study or series with local instances, a local instance. */
const LOCAL_CONDITION: Record<QueryLevel, string> = {
  PATIENT: 'st.num_local_instances > 0',
  STUDY: 'st.num_local_instances > 0',
  SERIES: 'se.num_local_instances > 0',
  IMAGE: 'i.local = 1',
};

function availability(level: QueryLevel, row: Record<string, string | number | null>): string {
  if (level === 'IMAGE') return !row._local ? 'NEARLINE' : row._fileMissing ? 'UNAVAILABLE' : 'ONLINE';
  // With no local instance it can only be in the archive, even when the archive gave no count.
  const here = Number(row._localCount);
  return here === 0 || here < Number(row._knownCount) ? 'NEARLINE' : 'ONLINE';
}

/** ModalitiesInStudy of the series here, with those the archive reported, sorted like the stored value. */
function mergeModalities(local: string | number | null | undefined, cloud: string | number | null | undefined): string {
  const reported = typeof cloud === 'string' && cloud !== '[]' ? (JSON.parse(cloud) as string[]) : [];
  if (reported.length === 0) return String(local ?? '');
  const all = new Set([...String(local ?? '').split('\\').filter((m) => m !== ''), ...reported]);
  return [...all].sort().join('\\');
}

function toMatch(level: QueryLevel, row: Record<string, string | number | null>, totals: (patientId: string) => PatientTotals): QueryMatch {
  const { _latest, _fileMissing, _local, _localCount, _knownCount, _cloudModalities, ...match } = row;
  void _latest;
  void _fileMissing;
  void _local;
  void _localCount;
  void _knownCount;
  if (_cloudModalities !== undefined) match.ModalitiesInStudy = mergeModalities(match.ModalitiesInStudy, _cloudModalities);
  const patient = totals(String(match.PatientID ?? ''));
  match.NumberOfPatientRelatedStudies = patient.studies;
  match.NumberOfPatientRelatedSeries = patient.series;
  match.NumberOfPatientRelatedInstances = patient.instances;
  if (level === 'IMAGE') match.AvailableTransferSyntaxUID = match.TransferSyntaxUID;
  match.InstanceAvailability = availability(level, row);
  return match;
}

const STATEMENT_CACHE_SIZE = 256;
const statements = new WeakMap<Db, Map<string, Statement>>();

/** Prepared statements by SQL text, per database, least recently used dropped first. */
function prepared(db: Db, sql: string): Statement {
  let cache = statements.get(db);
  if (!cache) statements.set(db, (cache = new Map()));
  let statement = cache.get(sql);
  if (statement) {
    cache.delete(sql);
  } else {
    statement = db.prepare(sql);
    if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
  }
  cache.set(sql, statement);
  return statement;
}
