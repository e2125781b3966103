// Conformance defects that independent DICOM implementations found (issue 14), each seen through a real
// peer (DCMTK) or a raw Upper Layer client where DCMTK cannot show the detail.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import { spawnDaemon, untilReadyOrExit, type Daemon } from '../support/daemon.js';
import {
  associateRq, acceptUserInformation, cStoreCommand, dataSetOf, EXPLICIT_LITTLE_ENDIAN, pDataTf, PduType, UlConnection, VERIFICATION_SOP_CLASS,
} from '../support/dicom-ul.js';
import { startDimse, waitFor, type DimseHarness } from '../support/dimse-harness.js';
import { DicomDict, DicomMetaDictionary } from '../../main/core/dicom/dcmjs.js';
import { toExplicitLittleEndian } from '../../main/core/dicom/transcode.js';
import { parseFindOutput } from '../support/dcmtk-output.js';
import { makeInstance, SOP_CLASS_UIDS } from '../support/instance.js';
import { makeInstanceInSyntax } from '../support/transfer-syntax.js';
import { freePort, requireTool, run, waitForPort } from '../support/peers.js';
import { newUid } from '../support/uid.js';

/** The Patient Root SOP classes by the names DCMTK prints for them. */
const PATIENT_ROOT = {
  find: 'FINDPatientRootQueryRetrieveInformationModel',
  move: 'MOVEPatientRootQueryRetrieveInformationModel',
  get: 'GETPatientRootQueryRetrieveInformationModel',
};
const OUR_IMPLEMENTATION_CLASS_UID = '2.25.271936471235240389361726404218383760211';
const OUR_IMPLEMENTATION_VERSION = 'DICOM_EDGE_01';

/** PS3.5 I.2: "Hong^Gildong=洪^吉洞=홍^길동" in ISO 2022 IR 149 (Korean), as the standard's example encodes it. */
const KOREAN = {
  specificCharacterSet: ['', 'ISO 2022 IR 149'],
  bytes: Buffer.from('486f6e675e47696c646f6e673d1b242943fbf35e1b242943d1ced4d73d1b242943c8ab5e1b242943b1e6b5bf', 'hex'),
  text: 'Hong^Gildong=洪^吉洞=홍^길동',
};
/** PS3.5 H.3.2: "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう" in ISO 2022 IR 13 with IR 87 (Japanese). */
const JAPANESE = {
  specificCharacterSet: ['ISO 2022 IR 13', 'ISO 2022 IR 87'],
  bytes: Buffer.from('d4cfc0de5ec0dbb33d1b24423b3345441b284a5e1b244242404f3a1b284a3d1b24422464245e24401b284a5e1b2442243f246d24261b284a', 'hex'),
  text: 'ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう',
};

/** Puts `bytes` where dcmjs wrote `placeholder` (same even length), since dcmjs can only write text as UTF-8. */
function patchText(file: Buffer, placeholder: string, bytes: Buffer): Buffer {
  const at = file.indexOf(Buffer.from(placeholder, 'latin1'));
  assert.ok(at > 0 && placeholder.length === bytes.length, 'the placeholder is in the file and as long as the bytes');
  const out = Buffer.from(file);
  bytes.copy(out, at);
  return out;
}

/** A C-FIND query file (explicit VR little endian) for findscu, its PatientName key in the given bytes. */
function queryFile(specificCharacterSet: string[], name: Buffer, level: string): Buffer {
  const placeholder = 'Q'.repeat(name.length);
  const meta = DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: '1.2.840.10008.5.1.4.1.2.2.1',
    MediaStorageSOPInstanceUID: newUid(),
    TransferSyntaxUID: '1.2.840.10008.1.2.1',
  });
  const dict = new DicomDict(meta);
  dict.dict = DicomMetaDictionary.denaturalizeDataset({
    SpecificCharacterSet: specificCharacterSet, QueryRetrieveLevel: level, PatientName: placeholder, StudyInstanceUID: '',
  });
  return patchText(Buffer.from(dict.write()), placeholder, name);
}

const RLE_LOSSLESS = '1.2.840.10008.1.2.5';

/** The Status (0000,0900) of a response command in a P-DATA-TF body (one PDV, implicit VR little endian). */
function commandStatus(pDataBody: Buffer): number | undefined {
  const command = pDataBody.subarray(6);
  for (let at = 0; at + 8 <= command.length;) {
    const [group, element, length] = [command.readUInt16LE(at), command.readUInt16LE(at + 2), command.readUInt32LE(at + 4)];
    if (group === 0x0000 && element === 0x0900) return command.readUInt16LE(at + 8);
    at += 8 + length;
  }
  return undefined;
}

/** Every "Affected SOP Class UID" a DCMTK tool printed with -d for the responses it received. */
function responseSopClasses(output: string): string[] {
  const blocks = output.split(/=+ INCOMING DIMSE MESSAGE =+/).slice(1);
  return blocks.flatMap((block) => {
    if (!/Message Type\s*: C-(FIND|MOVE|GET) RSP/.test(block)) return [];
    const m = /Affected SOP Class UID\s*: (\S+)/.exec(block);
    return [m?.[1] ?? 'none'];
  });
}

describe('DIMSE conformance (issue 14)', () => {
  let h: DimseHarness;
  let dest: { port: number; dir: string; daemon: Daemon; logFile: string };
  /** A storescp that takes implicit VR little endian only, so that C-MOVE must convert compressed instances. */
  let plain: { port: number; dir: string; daemon: Daemon };
  const studyUid = newUid();
  const seriesUid = newUid();
  const patientId = 'PCONF1';

  before(async () => {
    const work = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-'));
    // A storescp in debug mode: it prints each C-STORE request and the association it arrived on.
    const port = await freePort();
    const dir = join(work, 'dest');
    await mkdir(dir, { recursive: true });
    const logFile = join(work, 'storescp.log');
    const daemon = spawnDaemon(requireTool('storescp', 'dcmtk'), ['-d', '-od', dir, '-aet', 'DEST', '+xa', String(port)], { logFile });
    await untilReadyOrExit(daemon, 'storescp', waitForPort(port, '127.0.0.1', 10_000));
    dest = { port, dir, daemon, logFile };
    const plainPort = await freePort();
    const plainDir = join(work, 'plain');
    await mkdir(plainDir, { recursive: true });
    const plainDaemon = spawnDaemon(requireTool('storescp', 'dcmtk'), ['-od', plainDir, '-aet', 'PLAIN', '+xi', String(plainPort)]);
    await untilReadyOrExit(plainDaemon, 'storescp', waitForPort(plainPort, '127.0.0.1', 10_000));
    plain = { port: plainPort, dir: plainDir, daemon: plainDaemon };
    h = await startDimse({ peers: [{ aeTitle: 'DEST', host: '127.0.0.1', port }, { aeTitle: 'PLAIN', host: '127.0.0.1', port: plainPort }] });
    for (let n = 1; n <= 2; n++) {
      await h.archive.ingest(Readable.from([makeInstance({ patientId, patientName: 'Conf^Ann', studyUid, seriesUid, instanceNumber: n, rows: 8, columns: 8 })]),
        { callingAe: 'TEST', peer: 'test' });
    }
  });
  after(async () => {
    await h?.stop();
    await dest?.daemon.stop();
    await plain?.daemon.stop();
  });

  test('Patient Root C-FIND responses echo the Patient Root SOP Class UID', async () => {
    const result = await run(requireTool('findscu', 'dcmtk'),
      ['-d', '-P', '-aec', 'EDGE', '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${patientId}`, '-k', 'StudyInstanceUID', '127.0.0.1', String(h.port)],
      { timeoutMs: 30_000 });
    const classes = responseSopClasses(result.stderr + result.stdout);
    assert.ok(classes.length >= 2, `a pending and a final response:\n${result.stderr}`);
    assert.deepEqual([...new Set(classes)], [PATIENT_ROOT.find]);
  });

  test('Patient Root C-MOVE responses echo the Patient Root SOP Class UID', async () => {
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-d', '-P', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${patientId}`, '-k', `StudyInstanceUID=${studyUid}`,
        '127.0.0.1', String(h.port)], { timeoutMs: 60_000 });
    const classes = responseSopClasses(result.stderr + result.stdout);
    assert.ok(classes.length >= 1, result.stderr);
    assert.deepEqual([...new Set(classes)], [PATIENT_ROOT.move]);
  });

  test('Patient Root C-GET responses echo the Patient Root SOP Class UID', async () => {
    const out = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-get-'));
    const result = await run(requireTool('getscu', 'dcmtk'),
      ['-d', '-P', '-aec', 'EDGE', '-od', out, '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=${patientId}`, '-k', `StudyInstanceUID=${studyUid}`,
        '127.0.0.1', String(h.port)], { timeoutMs: 60_000 });
    const classes = responseSopClasses(result.stderr + result.stdout);
    assert.ok(classes.length >= 1, result.stderr);
    assert.deepEqual([...new Set(classes)], [PATIENT_ROOT.get]);
  });

  test('C-MOVE sub-operations carry the Move Originator AE Title and Message ID, and our implementation identity', async () => {
    const offset = (await stat(dest.logFile)).size;
    await run(requireTool('movescu', 'dcmtk'),
      ['-d', '-S', '-aet', 'MOVER', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`,
        '127.0.0.1', String(h.port)], { timeoutMs: 60_000 });
    const log = await waitFor('the sub-operations in storescp\'s log', async () => {
      const text = (await readFile(dest.logFile, 'utf8')).slice(offset);
      return /C-STORE RQ[\s\S]*Association Release/.test(text) ? text : '';
    });
    const store = log.slice(log.indexOf('C-STORE RQ'));
    assert.match(store, /Move Originator AE Title\s*: MOVER/, store.slice(0, 2_000));
    assert.match(store, /Move Originator ID\s*: 1\b/, store.slice(0, 2_000));
    assert.match(log, new RegExp(`Their Implementation Class UID:\\s*${OUR_IMPLEMENTATION_CLASS_UID.replaceAll('.', '\\.')}`));
    assert.match(log, new RegExp(`Their Implementation Version Name:\\s*${OUR_IMPLEMENTATION_VERSION}`));
  });

  describe('ISO 2022 character sets (Korean IR 149, Japanese IR 13 + IR 87)', () => {
    const stored: Record<string, string> = {};
    before(async () => {
      for (const [label, charset] of Object.entries({ korean: KOREAN, japanese: JAPANESE })) {
        const placeholder = 'N'.repeat(charset.bytes.length);
        const studyUid = newUid();
        const file = makeInstance({ patientName: placeholder, patientId: `P-${label}`, studyUid, rows: 8, columns: 8,
          extra: { SpecificCharacterSet: charset.specificCharacterSet } });
        await h.archive.ingest(Readable.from([patchText(file, placeholder, charset.bytes)]), { callingAe: 'TEST', peer: 'test' });
        stored[label] = studyUid;
      }
    });

    for (const [label, charset] of Object.entries({ korean: KOREAN, japanese: JAPANESE })) {
      test(`${label}: the stored name is indexed decoded, as QIDO and C-FIND read it`, () => {
        const [match] = h.archive.reads.query({ level: 'STUDY', keys: { StudyInstanceUID: stored[label]!, PatientName: '' } });
        assert.equal(match?.PatientName, charset.text);
      });

      test(`${label}: C-FIND returns the name decoded, in UTF-8 without escape sequences`, async () => {
        const result = await run(requireTool('findscu', 'dcmtk'),
          ['-v', '-S', '-aec', 'EDGE', '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientID=P-${label}`, '-k', 'PatientName', '127.0.0.1', String(h.port)],
          { timeoutMs: 30_000 });
        const { responses } = parseFindOutput(result.stderr + result.stdout);
        assert.equal(responses.length, 1, result.stderr);
        assert.equal(responses[0]!.SpecificCharacterSet, 'ISO_IR 192');
        assert.equal(responses[0]!.PatientName, charset.text);
      });

      test(`${label}: a query key in that character set is decoded and matches`, async () => {
        const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-query-'));
        const path = join(dir, 'query.dcm');
        await writeFile(path, queryFile(charset.specificCharacterSet, charset.bytes, 'STUDY'));
        const result = await run(requireTool('findscu', 'dcmtk'), ['-v', '-S', '-aec', 'EDGE', '127.0.0.1', String(h.port), path], { timeoutMs: 30_000 });
        const { responses, final } = parseFindOutput(result.stderr + result.stdout);
        assert.equal(final, 'Success', result.stderr);
        assert.deepEqual(responses.map((r) => r.StudyInstanceUID), [stored[label]], result.stderr);
      });
    }
  });

  test('an empty US return key (Rows, Columns) is universal matching at IMAGE level', async () => {
    const result = await run(requireTool('findscu', 'dcmtk'),
      ['-v', '-S', '-aec', 'EDGE', '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${studyUid}`, '-k', `SeriesInstanceUID=${seriesUid}`,
        '-k', 'SOPInstanceUID', '-k', 'Rows', '-k', 'Columns', '127.0.0.1', String(h.port)], { timeoutMs: 30_000 });
    const { responses, final } = parseFindOutput(result.stderr + result.stdout);
    assert.equal(final, 'Success', result.stderr);
    assert.equal(responses.length, 2, 'both instances (8 x 8) match');
    const output = result.stderr + result.stdout;
    assert.equal(output.match(/\(0028,0010\) US 8 /g)?.length, 2, 'Rows returned with each match');
    assert.equal(output.match(/\(0028,0011\) US 8 /g)?.length, 2, 'Columns returned with each match');
  });

  test('a trailing "=" in a person name: the index and C-FIND keys agree, so a returned name finds its study', async () => {
    const trailingStudy = newUid();
    await h.archive.ingest(Readable.from([makeInstance({ patientName: 'Eq^Trailing=', patientId: 'P-EQ', studyUid: trailingStudy, rows: 8, columns: 8 })]),
      { callingAe: 'TEST', peer: 'test' });
    const find = async (name: string) => {
      const result = await run(requireTool('findscu', 'dcmtk'),
        ['-v', '-S', '-aec', 'EDGE', '-k', 'QueryRetrieveLevel=STUDY', '-k', `PatientName=${name}`, '-k', 'StudyInstanceUID', '127.0.0.1', String(h.port)],
        { timeoutMs: 30_000 });
      return parseFindOutput(result.stderr + result.stdout).responses;
    };
    const [returned] = await find('Eq^Trailing*');
    assert.ok(returned, 'found by wildcard');
    assert.deepEqual((await find(returned.PatientName!)).map((r) => r.StudyInstanceUID), [trailingStudy], `exact match on ${returned.PatientName}`);
    assert.deepEqual((await find('Eq^Trailing=')).map((r) => r.StudyInstanceUID), [trailingStudy], 'the name as stored');
    // QIDO passes its keys to the same query.
    assert.deepEqual(h.archive.reads.query({ level: 'STUDY', keys: { PatientName: 'Eq^Trailing=' } }).map((m) => m.StudyInstanceUID), [trailingStudy]);
    assert.deepEqual(h.archive.reads.query({ level: 'STUDY', keys: { PatientName: 'Eq^Trailing' } }).map((m) => m.StudyInstanceUID), [trailingStudy]);
  });

  test('Data Set Trailing Padding after encapsulated Pixel Data is stored, as storescp does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-padding-'));
    const source = await makeInstanceInSyntax(dir, 'rle', { rows: 16, columns: 16 });
    // (FFFC,FFFC) OB, explicit VR little endian, 64 bytes of zeros (PS3.5 7.1.1: Data Set Trailing Padding).
    const padding = Buffer.concat([Buffer.from([0xfc, 0xff, 0xfc, 0xff, 0x4f, 0x42, 0, 0]), Buffer.from([64, 0, 0, 0]), Buffer.alloc(64)]);
    const padded = Buffer.concat([await readFile(source.path), padding]);
    // DCMTK's senders drop the padding when they write, so a raw peer sends the file's data set as it is.
    const peer = await UlConnection.associate(h.port, [{ id: 1, abstractSyntax: SOP_CLASS_UIDS.ctImage, transferSyntaxes: [RLE_LOSSLESS] }]);
    try {
      await peer.send(pDataTf([{ contextId: 1, command: true, last: true, value: cStoreCommand(SOP_CLASS_UIDS.ctImage, source.sopInstanceUid) }]));
      await peer.send(pDataTf([{ contextId: 1, command: false, last: true, value: dataSetOf(padded) }]));
      const response = await peer.nextPdu();
      assert.equal(response?.type, PduType.pData);
      assert.equal(commandStatus(response.body), 0x0000, 'C-STORE success');
    } finally {
      peer.reset();
    }
    const stored = h.archive.reads.instanceFile(source.sopInstanceUid);
    assert.ok(stored, 'stored');
    const bytes = await readFile(h.archive.paths.absolute(stored));
    assert.ok(bytes.subarray(bytes.length - padding.length).equals(padding), 'the padding is kept as received');
  });

  test('encapsulated Pixel Data that really is cut short is still refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-cut-'));
    const source = await makeInstanceInSyntax(dir, 'rle', { rows: 16, columns: 16 });
    const whole = await readFile(source.path);
    // Drop the sequence delimiter and the end of the last fragment, then pad: the padding must not hide the cut.
    const padding = Buffer.concat([Buffer.from([0xfc, 0xff, 0xfc, 0xff, 0x4f, 0x42, 0, 0]), Buffer.from([8, 0, 0, 0]), Buffer.alloc(8)]);
    await assert.rejects(h.archive.ingest(Readable.from([Buffer.concat([whole.subarray(0, whole.length - 20), padding])]), { callingAe: 'TEST', peer: 'test' }),
      /sequence delimiter|truncated/);
    assert.equal(h.archive.reads.instanceFile(source.sopInstanceUid), undefined);
  });

  test('a single-sample JPEG 2000 instance converted for C-MOVE gains no Planar Configuration', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'dicom-edge-conf-j2k-'));
    const source = await makeInstanceInSyntax(dir, 'jpeg2000', { rows: 16, columns: 16 });
    // Our JPEG 2000 encoder writes Planar Configuration too; a modality's single-sample image has none.
    const encoded = await readFile(source.path);
    const planar = dicomParser.parseDicom(encoded).elements.x00280006;
    const file = planar ? Buffer.concat([encoded.subarray(0, planar.dataOffset - 8), encoded.subarray(planar.dataOffset + planar.length)]) : encoded;
    assert.equal(dicomParser.parseDicom(file).elements.x00280006, undefined, 'the source has none');
    await h.archive.ingest(Readable.from([file]), { callingAe: 'TEST', peer: 'test' });
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-S', '-aec', 'EDGE', '-aem', 'PLAIN', '-k', 'QueryRetrieveLevel=IMAGE', '-k', `StudyInstanceUID=${source.studyUid}`,
        '-k', `SeriesInstanceUID=${source.seriesUid}`, '-k', `SOPInstanceUID=${source.sopInstanceUid}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 60_000 });
    const name = (await readdir(plain.dir)).find((n) => n.endsWith(source.sopInstanceUid));
    assert.ok(name, `converted and received:\n${result.stderr}`);
    const received = dicomParser.parseDicom(await readFile(join(plain.dir, name)));
    assert.equal(received.string('x00020010')?.replace(/\0+$/, ''), '1.2.840.10008.1.2');
    assert.equal(received.uint16('x00280002'), 1, 'Samples per Pixel');
    assert.equal(received.elements.x00280006, undefined, 'Planar Configuration is absent (PS3.3 C.7.6.3.1.3: only with Samples per Pixel > 1)');
  });

  test('conversion from Implicit VR keeps ISO_IR 100 on an all-ASCII data set (C-MOVE and WADO-RS)', async () => {
    const sopInstanceUid = newUid();
    const latin1 = makeInstance({ sopInstanceUid, specificCharacterSet: 'ISO_IR 100', transferSyntax: '1.2.840.10008.1.2', rows: 8, columns: 8 });
    const converted = toExplicitLittleEndian(latin1, '1.2.840.10008.1.2');
    assert.equal(dicomParser.parseDicom(converted).string('x00080005'), 'ISO_IR 100', 'WADO-RS conversion');

    const studyUid = dicomParser.parseDicom(latin1).string('x0020000d')!;
    await h.archive.ingest(Readable.from([latin1]), { callingAe: 'TEST', peer: 'test' });
    // DEST prefers Explicit VR Little Endian, so the stored Implicit VR instance is converted on the way.
    const result = await run(requireTool('movescu', 'dcmtk'),
      ['-S', '-aec', 'EDGE', '-aem', 'DEST', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${studyUid}`, '127.0.0.1', String(h.port)],
      { timeoutMs: 60_000 });
    const name = (await readdir(dest.dir)).find((n) => n.endsWith(sopInstanceUid));
    assert.ok(name, `moved:\n${result.stderr}`);
    const received = dicomParser.parseDicom(await readFile(join(dest.dir, name)));
    assert.equal(received.string('x00020010')?.replace(/\0+$/, ''), '1.2.840.10008.1.2.1', 'converted to Explicit VR Little Endian');
    assert.equal(received.string('x00080005'), 'ISO_IR 100');
  });

  test('conversion of a data set with text outside ASCII declares what it writes (UTF-8)', () => {
    const utf8 = makeInstance({ patientName: 'Müller^Hans', transferSyntax: '1.2.840.10008.1.2', rows: 8, columns: 8 });
    assert.equal(dicomParser.parseDicom(toExplicitLittleEndian(utf8, '1.2.840.10008.1.2')).string('x00080005'), 'ISO_IR 192');
  });

  test('A-ASSOCIATE-AC: our Implementation Class UID and Version Name; a Maximum PDU Length of 0 answered with 262144', async () => {
    const peer = await UlConnection.connect(h.port);
    try {
      // associateRq proposes a Maximum Length of 0 (no limit).
      await peer.send(associateRq('RAWSCU', 'EDGE', [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [EXPLICIT_LITTLE_ENDIAN] }]));
      const answer = await peer.nextPdu();
      assert.equal(answer?.type, PduType.associateAc);
      const info = acceptUserInformation(answer.body);
      assert.equal(info.implementationClassUid, OUR_IMPLEMENTATION_CLASS_UID);
      assert.equal(info.implementationVersionName, OUR_IMPLEMENTATION_VERSION);
      assert.equal(info.maxPduLength, 262144);
    } finally {
      peer.reset();
    }
  });
});
