// Child process for the crash-safety test: ingests generated instances forever. It prints
// "SEND <sopInstanceUid> <sha256>" before each ingest starts and "DONE <sopInstanceUid> <sha256>" once it
// resolves. The parent kills it with SIGKILL.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pino from 'pino';
import { Archive } from '../../../main/core/store/archive.js';
import { makeInstance } from '../../support/instance.js';
import { indexDb } from '../../support/index-db.js';
import { newUid } from '../../support/uid.js';

const dataDir = process.argv[2]!;
const { archive } = await Archive.open({
  dataDir,
  limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
  logger: pino({ level: 'silent' }),
  route: () => ['cloud'],
});
process.stdout.write('READY\n');
const studyUid = `2.25.${BigInt('0x' + createHash('sha256').update(dataDir).digest('hex').slice(0, 24)).toString()}`;
// Instances acknowledged (in earlier runs, and in this one), which later ones may replace.
const acknowledged = indexDb(archive).prepare('SELECT sop_instance_uid AS sopInstanceUid, series_uid AS seriesUid FROM instances').all() as
  Array<{ sopInstanceUid: string; seriesUid: string }>;
let n = 0;
for (;;) {
  // Four concurrent writers, so kills land between rename and commit of one while another spools.
  const batch = Array.from({ length: 4 }, () => {
    n++;
    // One instance of each batch re-sends an acknowledged UID with new bytes of the same size, exercising the
    // replace path: at the same path every other time (only the hash shows the change), else moved to a new series.
    const replaced = n % 4 === 0 && acknowledged.length > 0 ? acknowledged.splice(n % acknowledged.length, 1)[0] : undefined;
    const sopInstanceUid = replaced?.sopInstanceUid ?? newUid();
    const seriesUid = replaced && n % 8 === 0 ? replaced.seriesUid : newUid();
    const bytes = makeInstance({
      studyUid, seriesUid, sopInstanceUid, rows: 64, columns: 64, instanceNumber: 1, patientName: `Crash^${String(n).padStart(8, '0')}`,
    });
    const sha = createHash('sha256').update(bytes).digest('hex');
    process.stdout.write(`SEND ${sopInstanceUid} ${sha}\n`);
    const chunks = [bytes.subarray(0, 3000), bytes.subarray(3000)];
    return archive.ingest(Readable.from(chunks), { callingAe: 'CRASHTEST', peer: 'child' }).then((result) => {
      process.stdout.write(`DONE ${result.header.sopInstanceUid} ${sha}\n`);
      acknowledged.push({ sopInstanceUid, seriesUid });
    });
  });
  await Promise.all(batch);
}
