import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import dicomParser from 'dicom-parser';
import { makeInstance, SOP_CLASS_UIDS, type InstanceOptions, type NativeTransferSyntaxUid } from './instance.js';
import { encodeJpeg2000Lossless } from './jpeg2000.js';
import { requireTool, runOk } from './process.js';
import { newUid } from './uid.js';

export const TRANSFER_SYNTAX_UIDS = {
  implicit: '1.2.840.10008.1.2',
  explicit: '1.2.840.10008.1.2.1',
  bigendian: '1.2.840.10008.1.2.2',
  deflated: '1.2.840.10008.1.2.1.99',
  'jpeg-baseline': '1.2.840.10008.1.2.4.50',
  'jpeg-lossless': '1.2.840.10008.1.2.4.70', // Process 14, Selection Value 1
  'jpeg-ls': '1.2.840.10008.1.2.4.80', // lossless
  jpeg2000: '1.2.840.10008.1.2.4.90', // lossless only
  rle: '1.2.840.10008.1.2.5',
} as const;

export type SyntaxName = keyof typeof TRANSFER_SYNTAX_UIDS;

const DCMTK_CONVERSIONS: Record<Exclude<SyntaxName, 'jpeg2000'>, { binary: string; flags: string[] }> = {
  implicit: { binary: 'dcmconv', flags: ['+ti'] },
  explicit: { binary: 'dcmconv', flags: ['+te'] },
  bigendian: { binary: 'dcmconv', flags: ['+tb'] },
  deflated: { binary: 'dcmconv', flags: ['+td'] },
  // +un: dcmcjpeg would otherwise give lossy output a new SOP Instance UID, breaking callers' bookkeeping.
  'jpeg-baseline': { binary: 'dcmcjpeg', flags: ['+eb', '+un'] },
  'jpeg-lossless': { binary: 'dcmcjpeg', flags: ['+e1'] },
  'jpeg-ls': { binary: 'dcmcjpls', flags: ['+el'] },
  rle: { binary: 'dcmcrle', flags: [] },
};

/** The Transfer Syntax UID (0002,0010) from a Part 10 file's meta header. */
export async function readTransferSyntaxUid(path: string): Promise<string | undefined> {
  const meta = dicomParser.readPart10Header(await readFile(path));
  return meta.string('x00020010')?.replace(/\0+$/, '');
}

/**
 * Re-encodes an uncompressed Part 10 file. DCMTK does everything except JPEG 2000, which uses
 * dcmjs-codecs. JPEG baseline is 8-bit only: DCMTK would window 12/16-bit input down to 8 bits.
 */
export async function convertTransferSyntax(inputPath: string, outputPath: string, syntax: SyntaxName): Promise<void> {
  if (syntax === 'jpeg2000') {
    await writeFile(outputPath, await encodeJpeg2000Lossless(await readFile(inputPath)));
  } else {
    const { binary, flags } = DCMTK_CONVERSIONS[syntax];
    await runOk(requireTool(binary, 'dcmtk'), [...flags, inputPath, outputPath], { timeoutMs: 60_000 });
  }
  const written = await readTransferSyntaxUid(outputPath);
  if (written !== TRANSFER_SYNTAX_UIDS[syntax]) {
    throw new Error(`converting ${inputPath} to ${syntax} produced transfer syntax ${written}, expected ${TRANSFER_SYNTAX_UIDS[syntax]}`);
  }
}

export interface InstanceInSyntax {
  path: string;
  sopInstanceUid: string;
  studyUid: string;
  seriesUid: string;
  transferSyntaxUid: string;
}

const NATIVE: Partial<Record<SyntaxName, NativeTransferSyntaxUid>> = {
  implicit: TRANSFER_SYNTAX_UIDS.implicit,
  explicit: TRANSFER_SYNTAX_UIDS.explicit,
  bigendian: TRANSFER_SYNTAX_UIDS.bigendian,
};

/**
 * Writes <dir>/<SOPInstanceUID>.dcm in the given syntax. For 'jpeg-baseline' the image is 8-bit
 * MONOCHROME2 and, unless opts says otherwise, a Secondary Capture (an 8-bit CT is not a valid CT).
 */
export async function makeInstanceInSyntax(dir: string, syntax: SyntaxName, opts: InstanceOptions = {}): Promise<InstanceInSyntax> {
  const ids = {
    studyUid: opts.studyUid ?? newUid(),
    seriesUid: opts.seriesUid ?? newUid(),
    sopInstanceUid: opts.sopInstanceUid ?? newUid(),
  };
  let instanceOpts: InstanceOptions = { ...opts, ...ids };
  if (syntax === 'jpeg-baseline') {
    if (opts.bitsAllocated === 16) throw new Error('jpeg-baseline fixtures are 8-bit only; leave bitsAllocated unset or 8');
    instanceOpts = { sopClassUid: SOP_CLASS_UIDS.secondaryCapture, ...instanceOpts, bitsAllocated: 8 };
  }
  await mkdir(dir, { recursive: true });
  const path = join(dir, `${ids.sopInstanceUid}.dcm`);
  const native = NATIVE[syntax];
  if (native) {
    await writeFile(path, makeInstance({ ...instanceOpts, transferSyntax: native }));
  } else {
    const source = join(dir, `${ids.sopInstanceUid}.source.dcm`);
    await writeFile(source, makeInstance({ ...instanceOpts, transferSyntax: TRANSFER_SYNTAX_UIDS.explicit }));
    try {
      await convertTransferSyntax(source, path, syntax);
    } finally {
      await rm(source, { force: true });
    }
  }
  return { path, ...ids, transferSyntaxUid: TRANSFER_SYNTAX_UIDS[syntax] };
}

/**
 * How the DIMSE tests send each syntax with DCMTK: dcmsend keeps compressed data as it is; storescu is the
 * tool that can propose implicit and big endian on the wire.
 */
export const DCMTK_SENDERS: Record<SyntaxName, { tool: 'dcmsend' | 'storescu'; flags: string[] }> = {
  implicit: { tool: 'storescu', flags: ['-xi'] },
  explicit: { tool: 'dcmsend', flags: ['--decompress-never'] },
  bigendian: { tool: 'storescu', flags: ['-xb'] },
  deflated: { tool: 'dcmsend', flags: ['--decompress-never'] },
  'jpeg-baseline': { tool: 'dcmsend', flags: ['--decompress-never'] },
  'jpeg-lossless': { tool: 'dcmsend', flags: ['--decompress-never'] },
  'jpeg-ls': { tool: 'dcmsend', flags: ['--decompress-never'] },
  jpeg2000: { tool: 'dcmsend', flags: ['--decompress-never'] },
  rle: { tool: 'dcmsend', flags: ['--decompress-never'] },
};
