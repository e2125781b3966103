import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import { dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { spawnDaemon, untilReadyOrExit, type Daemon } from '../support/daemon.js';
import { parseFindOutput, type FindResult } from '../support/dcmtk-output.js';
import { startDimse, type DimseHarness } from '../support/dimse-harness.js';
import { makeInstance, SOP_CLASS_UIDS } from '../support/instance.js';
import { freePort, requireTool, run, runOk, startStorescp, waitForPort, type StorescpPeer } from '../support/peers.js';
import { makeInstanceInSyntax, TRANSFER_SYNTAX_UIDS } from '../support/transfer-syntax.js';
import { newUid } from '../support/uid.js';
import { indexDb } from '../support/index-db.js';

describe('DIMSE C-FIND, C-MOVE and C-GET against DCMTK', () => {
  let h: DimseHarness;
  let dest: StorescpPeer;
  let uncompressedOnly: { port: number; dir: string; daemon: Daemon };
  const study = { a: newUid(), b: newUid(), c: newUid() };
  const series = { a1: newUid(), a2: newUid(), b1: newUid(), c1: newUid() };
  const instancesA1: string[] = [];

  async function findscu(model: '-S' | '-P', keys: string[], extra: string[] = []): Promise<FindResult> {
    const result = await run(requireTool('findscu', 'dcmtk'),
      ['-v', model, '-aec', 'EDGE', ...extra, ...keys.flatMap((k) => ['-k', k]), '127.0.0.1', String(h.port)], { timeoutMs: 30_000 });
    return parseFindOutput(result.stderr + result.stdout);
  }

  before(async () => {
    requireTool('movescu', 'dcmtk');
    dest = await startStorescp({ dir: join(await tmpDir(), 'dest'), aet: 'DEST' });
    // A storescp that accepts implicit VR little endian only, to see conversions on C-MOVE.
    const port = await freePort();
    const dir = join(await tmpDir(), 'uncompressed');
    await mkdir(dir, { recursive: true });
    const daemon = spawnDaemon(requireTool('storescp', 'dcmtk'), ['-od', dir, '-aet', 'PLAIN', '+xi', '-dhl', String(port)]);
    await untilReadyOrExit(daemon, 'storescp', waitForPort(port, '127.0.0.1', 10_000));
    uncompressedOnly = { port, dir, daemon };
    h = await startDimse({
      peers: [
        { aeTitle: 'DEST', host: '127.0.0.1', port: dest.port },
        { aeTitle: 'PLAIN', host: '127.0.0.1', port },
        { aeTitle: 'NOBODY', host: '127.0.0.1', port: await freePort() },
      ],
    });
    const specs = [
      ...[1, 2, 3].map((n) => ({ patientName: 'Doe^John', patientId: 'P001', patientBirthDate: '19700101', patientSex: 'M', studyUid: study.a,
        studyDate: '20240115', studyTime: '101500', accession: 'ACC-A', studyDescription: 'Chest CT', seriesUid: series.a1, seriesNumber: 1,
        modality: 'CT', instanceNumber: n })),
      { patientName: 'Doe^John', patientId: 'P001', studyUid: study.a, studyDate: '20240115', studyTime: '101500', accession: 'ACC-A',
        studyDescription: 'Chest CT', seriesUid: series.a2, seriesNumber: 2, modality: 'MR', instanceNumber: 1 },
      ...[1, 2].map((n) => ({ patientName: 'Smith^Jane', patientId: 'P002', patientBirthDate: '19800202', patientSex: 'F', studyUid: study.b,
        studyDate: '20240301', studyTime: '090000', accession: 'ACC-B', studyDescription: 'Abdomen US', seriesUid: series.b1, seriesNumber: 1,
        modality: 'US', sopClassUid: SOP_CLASS_UIDS.secondaryCapture, instanceNumber: n })),
      { patientName: 'Müller^Hans', patientId: 'P003', patientBirthDate: '19900303', studyUid: study.c, studyDate: '20231231', studyTime: '235959',
        accession: 'ACC-C', studyDescription: 'Head CT', seriesUid: series.c1, seriesNumber: 1, modality: 'CT', instanceNumber: 1 },
    ];
    const files: string[] = [];
    for (const spec of specs) {
      const sopInstanceUid = newUid();
      if (spec.seriesUid === series.a1) instancesA1.push(sopInstanceUid);
      const path = join(h.dir, 'in', `${sopInstanceUid}.dcm`);
      await mkdir(join(h.dir, 'in'), { recursive: true });
      await writeFile(path, makeInstance({ ...spec, sopInstanceUid, rows: 32, columns: 32 }));
      files.push(path);
    }
    await runOk(requireTool('storescu', 'dcmtk'), ['-aec', 'EDGE', '127.0.0.1', String(h.port), ...files], { timeoutMs: 30_000 });
  });
  after(async () => {
    await h?.stop();
    await dest?.stop();
    await uncompressedOnly?.daemon.stop();
  });

  test('PATIENT level (Patient Root): every patient, with related counts', async () => {
    const { responses, final } = await findscu('-P', ['QueryRetrieveLevel=PATIENT', 'PatientID', 'PatientName', 'NumberOfPatientRelatedStudies']);
    assert.equal(final, 'Success');
    assert.deepEqual(responses.map((r) => r.PatientID).sort(), ['P001', 'P002', 'P003']);
    assert.equal(responses.find((r) => r.PatientID === 'P001')?.NumberOfPatientRelatedStudies, '1');
  });

  test('STUDY level, single value: requested keys, unique key, computed attributes', async () => {
    const { responses } = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientID=P001', 'PatientName', 'ModalitiesInStudy',
      'NumberOfStudyRelatedSeries', 'NumberOfStudyRelatedInstances', 'AccessionNumber']);
    assert.equal(responses.length, 1);
    const r = responses[0]!;
    assert.equal(r.StudyInstanceUID, study.a);
    assert.equal(r.PatientName, 'Doe^John');
    assert.equal(r.AccessionNumber, 'ACC-A');
    assert.deepEqual(r.ModalitiesInStudy!.split('\\').sort(), ['CT', 'MR']);
    assert.equal(r.NumberOfStudyRelatedSeries, '2');
    assert.equal(r.NumberOfStudyRelatedInstances, '4');
    assert.equal(r.StudyDescription, undefined, 'keys not asked for are not returned');
  });

  test('universal matching returns every study with the values', async () => {
    const { responses } = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate']);
    assert.deepEqual(responses.map((r) => r.StudyDate).sort(), ['20231231', '20240115', '20240301']);
  });

  test('wildcards * and ? on PN, case-insensitively', async () => {
    const doe = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=doe*']);
    assert.deepEqual(doe.responses.map((r) => r.StudyInstanceUID), [study.a]);
    const jane = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'PatientName=*^J?NE']);
    assert.deepEqual(jane.responses.map((r) => r.StudyInstanceUID), [study.b]);
    const accession = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'AccessionNumber=ACC-?']);
    assert.equal(accession.responses.length, 3);
  });

  test('non-ASCII names match and come back as ISO_IR 192', async () => {
    const { responses } = await findscu('-S', ['SpecificCharacterSet=ISO_IR 192', 'QueryRetrieveLevel=STUDY', 'PatientName=Müller*']);
    assert.equal(responses.length, 1);
    assert.equal(responses[0]!.StudyInstanceUID, study.c);
    assert.equal(responses[0]!.SpecificCharacterSet, 'ISO_IR 192');
  });

  test('date ranges A-, -B and A-B; time range', async () => {
    const from = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20240101-']);
    assert.deepEqual(from.responses.map((r) => r.StudyInstanceUID).sort(), [study.a, study.b].sort());
    const until = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=-20231231']);
    assert.deepEqual(until.responses.map((r) => r.StudyInstanceUID), [study.c]);
    const between = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyDate=20240201-20240331']);
    assert.deepEqual(between.responses.map((r) => r.StudyInstanceUID), [study.b]);
    const time = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'StudyTime=090000-110000']);
    assert.deepEqual(time.responses.map((r) => r.StudyInstanceUID).sort(), [study.a, study.b].sort());
  });

  test('UID list matching', async () => {
    const { responses } = await findscu('-S', ['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${study.a}\\${study.c}`]);
    assert.deepEqual(responses.map((r) => r.StudyInstanceUID).sort(), [study.a, study.c].sort());
  });

  test('ModalitiesInStudy matches any series of the study', async () => {
    const mr = await findscu('-S', ['QueryRetrieveLevel=STUDY', 'ModalitiesInStudy=MR']);
    assert.deepEqual(mr.responses.map((r) => r.StudyInstanceUID), [study.a]);
  });

  test('SERIES level with counts', async () => {
    const { responses } = await findscu('-S', ['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${study.a}`, 'Modality', 'NumberOfSeriesRelatedInstances']);
    const bySeries = Object.fromEntries(responses.map((r) => [r.SeriesInstanceUID, r]));
    assert.equal(bySeries[series.a1]?.Modality, 'CT');
    assert.equal(bySeries[series.a1]?.NumberOfSeriesRelatedInstances, '3');
    assert.equal(bySeries[series.a2]?.Modality, 'MR');
    assert.equal(responses[0]!.StudyInstanceUID, study.a);
  });

  test('IMAGE level (Patient Root): unique keys of every level', async () => {
    const { responses } = await findscu('-P', ['QueryRetrieveLevel=IMAGE', 'PatientID=P001', `StudyInstanceUID=${study.a}`,
      `SeriesInstanceUID=${series.a1}`, 'SOPInstanceUID', 'InstanceNumber']);
    assert.deepEqual(responses.map((r) => r.SOPInstanceUID).sort(), [...instancesA1].sort());
    assert.deepEqual(responses.map((r) => r.InstanceNumber), ['1', '2', '3']);
    assert.equal(responses[0]!.PatientID, 'P001');
  });

  test('a level the information model lacks is refused', async () => {
    const { final } = await findscu('-S', ['QueryRetrieveLevel=PATIENT', 'PatientID']);
    assert.notEqual(final, 'Success');
  });

  test('C-MOVE to a known peer: pending counts, then success; the files arrive as stored', async () => {
    const result = await runOk(requireTool('movescu', 'dcmtk'),
      ['-d', '-S', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study.a}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 60_000 });
    const output = result.stderr + result.stdout;
    assert.match(output, /0xff00: Pending/);
    assert.match(output, /Remaining Suboperations +: 3/);
    assert.match(output, /Completed Suboperations +: 4/);
    assert.match(output, /0x0000: Success/);
    const received = await readdir(dest.dir);
    for (const uid of instancesA1) {
      const name = received.find((n) => n.endsWith(uid));
      assert.ok(name, `${uid} moved`);
      const sent = await readFile(join(dest.dir, name));
      const row = indexDb(h.archive).prepare('SELECT path FROM instances WHERE sop_instance_uid = ?').get(uid) as { path: string };
      const stored = await readFile(h.archive.paths.absolute(row.path));
      assert.ok(sent.subarray(dataSetOffset(sent)).equals(stored.subarray(dataSetOffset(stored))), 'moved data set is the stored one');
    }
  });

  test('C-MOVE to an unknown destination gets 0xA801', async () => {
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-v', '-S', '-aec', 'EDGE', '-aem', 'UNKNOWN', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study.b}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 30_000 });
    assert.match(result.stderr + result.stdout, /MoveDestinationUnknown/);
  });

  test('C-MOVE to a peer that is down: every sub-operation fails', async () => {
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-d', '-S', '-aec', 'EDGE', '-aem', 'NOBODY', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${study.b}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 60_000 });
    assert.match(result.stderr + result.stdout, /Failed Suboperations +: 2/);
  });

  test('C-MOVE with a missing file: 0xB000 and the failed SOP Instance UID list', async () => {
    const sopInstanceUids = [newUid(), newUid(), newUid()];
    const studyUid = newUid();
    const seriesUid = newUid();
    for (const sopInstanceUid of sopInstanceUids) {
      await h.archive.ingest(Readable.from([makeInstance({ studyUid, seriesUid, sopInstanceUid, rows: 16, columns: 16 })]), { callingAe: 'TEST', peer: 'test' });
    }
    const gone = sopInstanceUids[1]!;
    const row = indexDb(h.archive).prepare('SELECT path FROM instances WHERE sop_instance_uid = ?').get(gone) as { path: string };
    await rm(h.archive.paths.absolute(row.path));
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-d', '-S', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 60_000 });
    const output = result.stderr + result.stdout;
    assert.match(output, /DIMSE Status +: 0xb000/i);
    assert.match(output, /Completed Suboperations +: 2/);
    assert.match(output, /Failed Suboperations +: 1/);
    assert.ok(output.includes(gone), 'the failed UID is listed');
  });

  for (const syntax of ['bigendian', 'rle'] as const) {
    test(`C-MOVE converts ${syntax} to a syntax the destination accepts`, async () => {
      const source = await makeInstanceInSyntax(join(h.dir, 'conv'), syntax);
      await h.archive.ingest(Readable.from([await readFile(source.path)]), { callingAe: 'TEST', peer: 'test' });
      await runOk(requireTool('movescu', 'dcmtk'),
        ['-S', '-aec', 'EDGE', '-aem', 'PLAIN', '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${source.studyUid}`,
          '-k', `SeriesInstanceUID=${source.seriesUid}`, '-k', `SOPInstanceUID=${source.sopInstanceUid}`, '127.0.0.1', String(h.port)],
        { timeoutMs: 60_000 });
      const name = (await readdir(uncompressedOnly.dir)).find((n) => n.endsWith(source.sopInstanceUid));
      assert.ok(name, 'the destination received the instance');
      const bytes = await readFile(join(uncompressedOnly.dir, name));
      assert.equal(dicomParser.readPart10Header(bytes).string('x00020010')?.replace(/\0+$/, ''), TRANSFER_SYNTAX_UIDS.implicit);
      const parsed = dicomParser.parseDicom(bytes);
      assert.equal(parsed.string('x00080018')?.replace(/\0+$/, ''), source.sopInstanceUid);
      assert.ok((parsed.elements.x7fe00010?.length ?? 0) > 0, 'pixel data arrived');
    });
  }

  test('C-GET sends the instances back on the same association', async () => {
    const out = join(await tmpDir(), 'get');
    await mkdir(out, { recursive: true });
    const result = await runOk(requireTool('getscu', 'dcmtk'),
      ['-v', '-S', '-aec', 'EDGE', '-od', out, '-k', 'QueryRetrieveLevel=SERIES', '-k', `StudyInstanceUID=${study.a}`,
        '-k', `SeriesInstanceUID=${series.a1}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 60_000 });
    assert.match(result.stderr + result.stdout, /Received C-GET Response \(Success\)/);
    const names = await readdir(out);
    for (const uid of instancesA1) assert.ok(names.some((n) => n.endsWith(uid)), `${uid} retrieved`);
  });
});

describe('DIMSE C-CANCEL of a C-FIND', () => {
  let h: DimseHarness;
  before(async () => {
    h = await startDimse();
    const studyUid = newUid();
    const seriesUid = newUid();
    for (let i = 0; i < 300; i++) {
      await h.archive.ingest(Readable.from([makeInstance({ studyUid, seriesUid, instanceNumber: i + 1, rows: 8, columns: 8 })]),
        { callingAe: 'TEST', peer: 'test' });
    }
  });
  after(async () => h?.stop());

  test('findscu --cancel stops the pending responses', async () => {
    const result = await run(requireTool('findscu', 'dcmtk'),
      ['-v', '-S', '-aec', 'EDGE', '--cancel', '2', '-k', 'QueryRetrieveLevel=IMAGE', '-k', 'SOPInstanceUID', '127.0.0.1', String(h.port)],
      { timeoutMs: 30_000 });
    const { responses, final } = parseFindOutput(result.stderr + result.stdout);
    assert.match(final, /Cancel/);
    assert.ok(responses.length < 300, `${responses.length} responses before the cancel took effect`);
  });
});

let tmpBase: string | undefined;
async function tmpDir(): Promise<string> {
  if (!tmpBase) {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    tmpBase = await mkdtemp(join(tmpdir(), 'dicom-edge-qr-'));
  }
  return tmpBase;
}
after(async () => {
  if (tmpBase) await rm(tmpBase, { recursive: true, force: true });
});
