import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import dicomParser from 'dicom-parser';
import { decideAssociation } from '../../main/core/dimse/association-policy.js';
import { buildFileMeta, dataSetOffset } from '../../main/core/dicom/file-meta.js';
import { IMPLEMENTATION_VERSION_NAME } from '../../main/core/dicom/implementation-uid.js';
import { parseIdentifier, responseIdentifier, toKeyString, uniqueKeys } from '../../main/core/dimse/identifier.js';
import { decideContext } from '../../main/core/dimse/presentation-contexts.js';
import { StoreSink } from '../../main/core/dimse/store-sink.js';
import { STORAGE_SOP_CLASSES } from '../../main/core/dicom/storage-sop-classes.js';

const settings = { aeTitle: 'EDGE', acceptAnyCalledAe: false, allowedCallingAes: [] as string[], maxAssociations: 2 };
const CT = '1.2.840.10008.5.1.4.1.1.2';
const EVRLE = '1.2.840.10008.1.2.1';
const IVRLE = '1.2.840.10008.1.2';
const EVRBE = '1.2.840.10008.1.2.2';
const JPEG_LS = '1.2.840.10008.1.2.4.80';

describe('association policy', () => {
  test('accepts our called AE title, padded or not', () => {
    assert.deepEqual(decideAssociation({ calledAe: 'EDGE ', callingAe: 'X', activeAssociations: 0 }, settings), { accept: true });
  });
  test('rejects another called AE title permanently (reason 7) unless any is accepted', () => {
    const d = decideAssociation({ calledAe: 'OTHER', callingAe: 'X', activeAssociations: 0 }, settings);
    assert.equal(d.accept, false);
    if (!d.accept) assert.deepEqual([d.result, d.source, d.reason], [1, 1, 7]);
    assert.equal(decideAssociation({ calledAe: 'OTHER', callingAe: 'X', activeAssociations: 0 }, { ...settings, acceptAnyCalledAe: true }).accept, true);
  });
  test('an allowlist rejects other calling AE titles (reason 3)', () => {
    const d = decideAssociation({ calledAe: 'EDGE', callingAe: 'EVIL', activeAssociations: 0 }, { ...settings, allowedCallingAes: ['CT1'] });
    assert.ok(!d.accept && d.reason === 3 && d.result === 1);
    assert.equal(decideAssociation({ calledAe: 'EDGE', callingAe: 'CT1', activeAssociations: 0 }, { ...settings, allowedCallingAes: ['CT1'] }).accept, true);
  });
  test('past the limit: transient, presentation-related provider, local limit exceeded', () => {
    const d = decideAssociation({ calledAe: 'EDGE', callingAe: 'X', activeAssociations: 2 }, settings);
    assert.ok(!d.accept);
    if (!d.accept) assert.deepEqual([d.result, d.source, d.reason], [2, 3, 2]);
  });
});

describe('presentation contexts', () => {
  const policy = { acceptPrivateSopClasses: false };
  test('storage keeps a compressed proposal as it is', () => {
    assert.deepEqual(decideContext(CT, [JPEG_LS, EVRLE], policy), { kind: 'accept', transferSyntaxUid: JPEG_LS });
  });
  test('among uncompressed proposals Explicit VR Little Endian wins', () => {
    assert.deepEqual(decideContext(CT, [IVRLE, EVRBE, EVRLE], policy), { kind: 'accept', transferSyntaxUid: EVRLE });
    assert.deepEqual(decideContext(CT, [EVRBE, IVRLE], policy), { kind: 'accept', transferSyntaxUid: IVRLE });
  });
  test('unknown transfer syntaxes and abstract syntaxes are refused', () => {
    assert.equal(decideContext(CT, ['1.2.3.4'], policy).kind, 'transfer-syntaxes-not-supported');
    assert.equal(decideContext('1.2.840.10008.5.1.4.1.1.999', [EVRLE], policy).kind, 'abstract-syntax-not-supported');
  });
  test('private storage SOP classes only when the setting says so', () => {
    assert.equal(decideContext('1.3.12.2.1107.5.9.1', [EVRLE], policy).kind, 'abstract-syntax-not-supported');
    assert.equal(decideContext('1.3.12.2.1107.5.9.1', [EVRLE], { acceptPrivateSopClasses: true }).kind, 'accept');
  });
  test('verification and query/retrieve take an uncompressed syntax only', () => {
    assert.deepEqual(decideContext('1.2.840.10008.1.1', [IVRLE, EVRLE], policy), { kind: 'accept', transferSyntaxUid: EVRLE });
    assert.equal(decideContext('1.2.840.10008.5.1.4.1.2.2.1', [JPEG_LS], policy).kind, 'transfer-syntaxes-not-supported');
  });
  test('the storage list holds current classes and no retired ones', () => {
    assert.ok(STORAGE_SOP_CLASSES['1.2.840.10008.5.1.4.1.1.77.1.6']);
    assert.ok(STORAGE_SOP_CLASSES['1.2.840.10008.5.1.4.1.1.6.3']);
    assert.equal(STORAGE_SOP_CLASSES['1.2.840.10008.5.1.4.1.1.6'], undefined); // retired Ultrasound Image Storage
  });
});

describe('file meta information', () => {
  test('is a valid group 0002 that dicom-parser reads back', () => {
    const meta = buildFileMeta({ sopClassUid: CT, sopInstanceUid: '1.2.3.45', transferSyntaxUid: JPEG_LS, sourceAeTitle: 'CT1' });
    const body = Buffer.from([0x08, 0x00, 0x60, 0x00, 0x43, 0x53, 0x02, 0x00, 0x43, 0x54]); // (0008,0060) CS "CT"
    const file = Buffer.concat([meta, body]);
    const parsed = dicomParser.readPart10Header(file);
    assert.equal(parsed.string('x00020010'), JPEG_LS);
    assert.equal(parsed.string('x00020003'), '1.2.3.45');
    assert.equal(parsed.string('x00020016'), 'CT1');
    assert.equal(dataSetOffset(file), meta.length);
  });

  test('each element in Explicit VR Little Endian with the dictionary\'s VR, padded to even length; no source AE title, no element', () => {
    const meta = buildFileMeta({ sopClassUid: CT, sopInstanceUid: '1.2.3.4', transferSyntaxUid: JPEG_LS });
    const parsed = dicomParser.readPart10Header(meta);
    assert.deepEqual(Object.keys(parsed.elements), ['x00020000', 'x00020001', 'x00020002', 'x00020003', 'x00020010', 'x00020012', 'x00020013']);
    assert.deepEqual(Object.values(parsed.elements).map((element) => element.vr), ['UL', 'OB', 'UI', 'UI', 'UI', 'UI', 'SH']);
    assert.equal(parsed.uint32('x00020000'), meta.length - 132 - 12, 'group length: the bytes after it');
    assert.deepEqual([...meta.subarray(parsed.elements.x00020001!.dataOffset, parsed.elements.x00020001!.dataOffset + 2)], [0x00, 0x01]);
    const uid = parsed.elements.x00020003!;
    assert.equal(meta.toString('latin1', uid.dataOffset, uid.dataOffset + uid.length), '1.2.3.4\0', 'a UID padded with NUL');
    const version = parsed.elements.x00020013!;
    assert.equal(version.length % 2, 0);
    assert.ok(meta.toString('latin1', version.dataOffset, version.dataOffset + version.length).startsWith(IMPLEMENTATION_VERSION_NAME));
    const withAe = dicomParser.readPart10Header(buildFileMeta({ sopClassUid: CT, sopInstanceUid: '1.2.3.4', transferSyntaxUid: JPEG_LS, sourceAeTitle: ' CT12 ' }));
    assert.equal(withAe.elements.x00020016!.vr, 'AE');
    assert.equal(withAe.string('x00020016'), 'CT12');
  });
});

describe('store sink', () => {
  test('forwards the prefix and every fragment uncopied, in batches, and pauses the sender when behind', async () => {
    const calls: string[] = [];
    const sink = new StoreSink(Buffer.from('PREFIX'), { pause: () => calls.push('pause'), resume: () => calls.push('resume') });
    const received: Buffer[][] = [];
    const parts = Array.from({ length: 200 }, (_, i) => Buffer.alloc(16 * 1024, i));
    for (const part of parts) sink.write(part);
    sink.end();
    assert.ok(calls.includes('pause'), 'paused while nobody reads');
    for await (const batch of sink.out) received.push(batch as Buffer[]);
    const fragments = received.flat();
    assert.ok(Buffer.concat(fragments).equals(Buffer.concat([Buffer.from('PREFIX'), ...parts])));
    assert.ok(fragments.slice(1).every((fragment, i) => fragment === parts[i]), 'the fragments themselves, not copies');
    assert.ok(received.length < 40, `batched into ${received.length} writes`);
    assert.equal(calls.at(-1), 'resume');
  });
  test('fail() ends the Part 10 stream with an error and swallows the rest', async () => {
    const sink = new StoreSink(Buffer.from('P'), { pause: () => undefined, resume: () => undefined });
    const reading = (async () => {
      for await (const chunk of sink.out) void chunk;
    })();
    sink.write(Buffer.alloc(10));
    sink.fail(new Error('peer aborted'));
    await assert.rejects(reading, /peer aborted/);
    sink.write(Buffer.alloc(1024 * 1024));
    await new Promise<void>((resolve) => sink.end(resolve));
  });
});

describe('identifiers', () => {
  test('naturalized values become DICOM strings', () => {
    assert.equal(toKeyString([{ Alphabetic: 'DOE*' }]), 'DOE*');
    assert.equal(toKeyString(['CT', 'MR']), 'CT\\MR');
    assert.equal(toKeyString('20240101- '), '20240101-');
    assert.equal(toKeyString(undefined), '');
  });
  test('a level outside the information model is refused', () => {
    assert.throws(() => parseIdentifier({ QueryRetrieveLevel: 'PATIENT' }, 'studyRoot'), /QueryRetrieveLevel/);
  });
  test('responses carry requested and unique keys and declare UTF-8 when needed', () => {
    const parsed = parseIdentifier({ QueryRetrieveLevel: 'SERIES', PatientName: [], Modality: '', Unknown: 'x' }, 'studyRoot');
    assert.deepEqual(parsed.keys, { PatientName: '', Modality: '' });
    assert.deepEqual(uniqueKeys('studyRoot', 'SERIES'), ['StudyInstanceUID', 'SeriesInstanceUID']);
    const out = responseIdentifier(parsed, 'studyRoot', { PatientName: 'Müller^Hans', Modality: 'CT', StudyInstanceUID: '1.2', SeriesInstanceUID: '1.3' }, 'EDGE');
    assert.deepEqual(out.PatientName, [{ Alphabetic: 'Müller^Hans' }]);
    assert.equal(out.SeriesInstanceUID, '1.3');
    assert.equal(out.StudyInstanceUID, '1.2');
    assert.equal(out.SpecificCharacterSet, 'ISO_IR 192');
  });
});
