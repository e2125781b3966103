import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import codecs from 'dcmjs-codecs';
import dicomParser from 'dicom-parser';
import {
  convertTransferSyntax,
  makeInstance,
  makeInstanceInSyntax,
  makeMultiFrame,
  makeStudy,
  newUid,
  readTransferSyntaxUid,
  TRANSFER_SYNTAX_UIDS,
  writeInstances,
  type SyntaxName,
} from '../support/fixtures.js';
import { listenPortsOutside } from '../support/net.js';
import { freePort, requireTool, run, runOk, startOrthanc, startStorescp, waitForPort } from '../support/peers.js';

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'support-test-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

function parse(buffer: Buffer): dicomParser.DataSet {
  return dicomParser.parseDicom(buffer);
}

function pixelBytes(buffer: Buffer): Buffer {
  const ds = parse(buffer);
  const el = ds.elements.x7fe00010;
  assert.ok(el, 'PixelData present');
  return Buffer.from(buffer.subarray(el.dataOffset, el.dataOffset + el.length));
}

async function dcmdumpOk(path: string, ...extra: string[]): Promise<string> {
  return (await runOk(requireTool('dcmdump', 'dcmtk'), [...extra, path])).stdout;
}

describe('newUid', () => {
  it('is a valid, unique UID under 2.25', () => {
    const uids = new Set(Array.from({ length: 1000 }, newUid));
    assert.equal(uids.size, 1000);
    for (const uid of uids) {
      assert.ok(uid.length <= 64, uid);
      assert.match(uid, /^2\.25\.(0|[1-9][0-9]*)$/);
    }
  });
});

describe('makeInstance', () => {
  for (const [name, ts] of [
    ['explicit', TRANSFER_SYNTAX_UIDS.explicit],
    ['implicit', TRANSFER_SYNTAX_UIDS.implicit],
    ['bigendian', TRANSFER_SYNTAX_UIDS.bigendian],
  ] as const) {
    it(`writes a ${name} Part 10 file that dcmdump and dicom-parser read`, async () => {
      const sopInstanceUid = newUid();
      const buffer = makeInstance({ sopInstanceUid, patientName: 'Doe^Jane', rows: 32, columns: 48, transferSyntax: ts });
      const [path] = await writeInstances(join(work, `native-${name}`), [{ buffer, sopInstanceUid }]);
      await dcmdumpOk(path!);
      const ds = parse(buffer);
      assert.equal(ds.string('x00020010'), ts);
      assert.equal(ds.string('x00020002'), '1.2.840.10008.5.1.4.1.1.2');
      assert.equal(ds.string('x00020003'), sopInstanceUid);
      assert.equal(ds.string('x00080018'), sopInstanceUid);
      assert.equal(ds.string('x00100010'), 'Doe^Jane');
      assert.equal(ds.uint16('x00280010'), 32);
      assert.equal(ds.uint16('x00280011'), 48);
      assert.equal(ds.string('x00281050'), '40');
      assert.equal(ds.string('x00281052'), '-1024');
      assert.equal(ds.elements.x7fe00010?.length, 32 * 48 * 2);
    });
  }

  it('draws a gradient, byte-swapped correctly in big endian', async () => {
    const opts = { sopInstanceUid: newUid(), studyUid: newUid(), seriesUid: newUid(), rows: 16, columns: 16 };
    const little = makeInstance(opts);
    const pixels = pixelBytes(little);
    const values = new Set(Array.from({ length: pixels.length / 2 }, (_, i) => pixels.readUInt16LE(i * 2)));
    assert.ok(values.size > 16, 'many distinct values');
    assert.equal(Math.min(...values), 0);
    assert.equal(Math.max(...values), 4095);

    const dir = join(work, 'swap');
    const [bigPath] = await writeInstances(dir, [
      { buffer: makeInstance({ ...opts, transferSyntax: TRANSFER_SYNTAX_UIDS.bigendian }), sopInstanceUid: 'big' },
    ]);
    const back = join(dir, 'back.dcm');
    await convertTransferSyntax(bigPath!, back, 'explicit');
    assert.deepEqual(pixelBytes(await readFile(back)), pixels);
  });

  it('can omit the SOP Instance UID and add or remove attributes', () => {
    const ds = parse(
      makeInstance({
        omitSopInstanceUid: true,
        extra: { BodyPartExamined: 'HEAD', PatientID: undefined, '00090010': { vr: 'LO', Value: ['ACME'] } },
      }),
    );
    assert.equal(ds.elements.x00080018, undefined);
    assert.equal(ds.elements.x00020003, undefined);
    assert.equal(ds.elements.x00100020, undefined);
    assert.equal(ds.string('x00180015'), 'HEAD');
    assert.equal(ds.string('x00090010'), 'ACME');
  });

  it('writes non-ASCII text as UTF-8 and refuses a contradicting character set', () => {
    const ds = parse(makeInstance({ patientName: 'Müller^Jörg' }));
    assert.equal(ds.string('x00080005'), 'ISO_IR 192');
    assert.throws(() => makeInstance({ patientName: 'Müller^Jörg', specificCharacterSet: 'ISO_IR 100' }), /ISO_IR 192/);
  });

  it('makes multi-frame instances', async () => {
    const buffer = makeMultiFrame({ rows: 8, columns: 8 });
    const ds = parse(buffer);
    assert.equal(ds.string('x00280008'), '10');
    assert.equal(ds.elements.x7fe00010?.length, 8 * 8 * 2 * 10);
    const [path] = await writeInstances(join(work, 'multiframe'), [{ buffer, sopInstanceUid: ds.string('x00080018')! }]);
    await dcmdumpOk(path!);
  });
});

describe('makeStudy', () => {
  it('shares the study and patient, numbers series and instances', async () => {
    const items = makeStudy({ series: 2, instancesPerSeries: 3, patientId: 'P42' });
    assert.equal(items.length, 6);
    assert.equal(new Set(items.map((i) => i.studyUid)).size, 1);
    assert.equal(new Set(items.map((i) => i.seriesUid)).size, 2);
    assert.equal(new Set(items.map((i) => i.sopInstanceUid)).size, 6);
    const last = parse(items[5]!.buffer);
    assert.equal(last.string('x00100020'), 'P42');
    assert.equal(last.string('x00200011'), '2');
    assert.equal(last.string('x00200013'), '3');
    assert.equal(last.string('x0020000d'), items[0]!.studyUid);

    const paths = await writeInstances(join(work, 'study'), items);
    assert.deepEqual(paths.map((p) => p.split('/').pop()), items.map((i) => `${i.sopInstanceUid}.dcm`));
  });
});

// How to get back to explicit little endian, to prove each encoding is decodable and (if lossless) exact.
const DECODERS: Record<SyntaxName, ((input: string, output: string) => Promise<void>) | undefined> = {
  implicit: (i, o) => convertTransferSyntax(i, o, 'explicit'),
  explicit: (i, o) => convertTransferSyntax(i, o, 'explicit'),
  bigendian: (i, o) => convertTransferSyntax(i, o, 'explicit'),
  deflated: (i, o) => convertTransferSyntax(i, o, 'explicit'),
  'jpeg-lossless': async (i, o) => void (await runOk(requireTool('dcmdjpeg', 'dcmtk'), [i, o])),
  'jpeg-ls': async (i, o) => void (await runOk(requireTool('dcmdjpls', 'dcmtk'), [i, o])),
  rle: async (i, o) => void (await runOk(requireTool('dcmdrle', 'dcmtk'), [i, o])),
  jpeg2000: async (i, o) => {
    await codecs.NativeCodecs.initializeAsync();
    const input = await readFile(i);
    const transcoder = new codecs.Transcoder(input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer);
    transcoder.transcode(TRANSFER_SYNTAX_UIDS.explicit);
    await writeFile(o, Buffer.from(transcoder.getDicomPart10()));
  },
  'jpeg-baseline': undefined, // lossy
};

describe('makeInstanceInSyntax', () => {
  for (const syntax of Object.keys(TRANSFER_SYNTAX_UIDS) as SyntaxName[]) {
    it(`produces ${syntax} (${TRANSFER_SYNTAX_UIDS[syntax]})`, async () => {
      const dir = join(work, `syntax-${syntax}`);
      const made = await makeInstanceInSyntax(dir, syntax, { rows: 24, columns: 20 });
      assert.equal(made.transferSyntaxUid, TRANSFER_SYNTAX_UIDS[syntax]);
      assert.equal(await readTransferSyntaxUid(made.path), TRANSFER_SYNTAX_UIDS[syntax]);
      const sop = await dcmdumpOk(made.path, '+P', '0008,0018');
      assert.ok(sop.includes(made.sopInstanceUid), `SOP Instance UID kept: ${sop}`);
      assert.deepEqual(await readdir(dir), [`${made.sopInstanceUid}.dcm`]);

      const decode = DECODERS[syntax];
      if (decode) {
        const decoded = join(dir, 'decoded.dcm');
        await decode(made.path, decoded);
        const original = makeInstance({ ...made, rows: 24, columns: 20 });
        assert.deepEqual(pixelBytes(await readFile(decoded)), pixelBytes(original), 'lossless round trip');
      } else {
        const ds = parse(await readFile(made.path));
        assert.equal(ds.uint16('x00280100'), 8);
      }
    });
  }

  it('refuses 16-bit JPEG baseline', async () => {
    await assert.rejects(makeInstanceInSyntax(join(work, 'bad'), 'jpeg-baseline', { bitsAllocated: 16 }), /8-bit/);
  });
});

describe('process helpers', () => {
  it('requireTool finds installed tools and fails loudly otherwise', () => {
    assert.equal(requireTool('storescu', 'dcmtk'), '/usr/bin/storescu');
    assert.throws(
      () => requireTool('no-such-tool-xyz', 'some-pkg'),
      /missing test peer: 'no-such-tool-xyz' not found on PATH — install the Debian package 'some-pkg' \(apt-get install -y some-pkg\)/,
    );
  });

  it('run reports exit codes and kills on timeout', async () => {
    const ok = await run('sh', ['-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual(ok, { code: 3, stdout: 'out\n', stderr: 'err\n' });
    await assert.rejects(run('sh', ['-c', 'echo doomed >&2; sleep 10'], { timeoutMs: 300 }), /timed out after 300 ms.*doomed/s);
  });

  it('freePort and waitForPort agree', async () => {
    const port = await freePort();
    await assert.rejects(waitForPort(port, '127.0.0.1', 200), /did not accept/);
  });

  const [ephemeralLow, ephemeralHigh] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const roomOutside = listenPortsOutside(ephemeralLow!, ephemeralHigh!) !== undefined;
  it('freePort hands out each port once, never one the kernel may give an outgoing connection', {
    skip: roomOutside ? false : `this machine's ephemeral range ${ephemeralLow}-${ephemeralHigh} leaves too few ports outside it`,
  }, async () => {
    const ports = await Promise.all(Array.from({ length: 100 }, () => freePort()));
    assert.equal(new Set(ports).size, ports.length);
    const inEphemeralRange = ports.filter((port) => port >= ephemeralLow! && port <= ephemeralHigh!);
    assert.deepEqual(inEphemeralRange, [], `ephemeral range ${ephemeralLow}-${ephemeralHigh}`);
  });

  it('listener ports: below the ephemeral range, else above it, else none (the kernel picks, as a machine allows)', () => {
    assert.deepEqual(listenPortsOutside(32_768, 60_999), { low: 10_000, high: 32_767 });
    assert.deepEqual(listenPortsOutside(1_024, 50_000), { low: 50_001, high: 65_535 });
    assert.equal(listenPortsOutside(1_024, 65_535), undefined);
    assert.equal(listenPortsOutside(11_000, 64_000), undefined);
  });
});

describe('Orthanc peer', () => {
  it('accepts a generated instance over REST and lists it over DICOMweb', { timeout: 60_000 }, async () => {
    const orthanc = await startOrthanc({ dir: join(work, 'orthanc'), aet: 'TESTORTHANC' });
    try {
      const [item] = makeStudy({ series: 1, instancesPerSeries: 1 });
      const posted = await fetch(`${orthanc.httpUrl}/instances`, {
        method: 'POST',
        headers: { 'content-type': 'application/dicom' },
        body: Uint8Array.from(item!.buffer),
      });
      assert.equal(posted.status, 200, await posted.clone().text());
      assert.equal(((await posted.json()) as { Status: string }).Status, 'Success');

      const listed = await fetch(`${orthanc.dicomWebUrl}/studies`, { headers: { accept: 'application/dicom+json' } });
      assert.equal(listed.status, 200);
      const studies = (await listed.json()) as Array<Record<string, { Value?: unknown[] }>>;
      assert.deepEqual(studies.map((s) => s['0020000D']?.Value?.[0]), [item!.studyUid]);
    } finally {
      await orthanc.stop();
    }
    assert.notEqual(orthanc.process.exitCode ?? orthanc.process.signalCode, null, 'Orthanc exited');
  });
});

describe('storescp peer', () => {
  it('receives an instance sent with storescu', { timeout: 30_000 }, async () => {
    const scp = await startStorescp({ dir: join(work, 'received'), aet: 'TESTSCP' });
    try {
      const made = await makeInstanceInSyntax(join(work, 'to-send'), 'explicit');
      await runOk(requireTool('storescu', 'dcmtk'), ['-aec', scp.aet, '127.0.0.1', String(scp.port), made.path], {
        timeoutMs: 20_000,
      });
      const files = await readdir(scp.dir);
      assert.deepEqual(files, [`CT.${made.sopInstanceUid}`], scp.log());
      const received = parse(await readFile(join(scp.dir, files[0]!)));
      assert.equal(received.string('x00080018'), made.sopInstanceUid);
    } finally {
      await scp.stop();
    }
  });
});
