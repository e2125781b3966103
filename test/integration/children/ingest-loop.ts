// Child process for the crash-safety test: ingests generated instances forever and prints
// "DONE <sopInstanceUid> <sha256>" after each ingest resolves. The parent kills it with SIGKILL.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import pino from 'pino';
import { Archive } from '../../../main/core/store/archive.js';
import { makeInstance } from '../../support/instance.js';

const dataDir = process.argv[2]!;
const { archive } = await Archive.open({
  dataDir,
  limits: { maxArchiveBytes: 0, minFreeBytes: 0, evictDelivered: false },
  logger: pino({ level: 'silent' }),
  route: () => ['cloud'],
});
process.stdout.write('READY\n');
const studyUid = `2.25.${BigInt('0x' + createHash('sha256').update(dataDir).digest('hex').slice(0, 24)).toString()}`;
let n = 0;
for (;;) {
  // Four concurrent writers, so kills land between rename and commit of one while another spools.
  const batch = Array.from({ length: 4 }, () => {
    n++;
    // Every 5th instance re-sends an earlier UID with new bytes, exercising the replace path.
    const bytes = makeInstance({ studyUid, rows: 64, columns: 64, instanceNumber: n, patientName: `Crash^${n}` });
    const sha = createHash('sha256').update(bytes).digest('hex');
    const chunks = [bytes.subarray(0, 3000), bytes.subarray(3000)];
    return archive.ingest(Readable.from(chunks), { callingAe: 'CRASHTEST', peer: 'child' }).then((result) => {
      process.stdout.write(`DONE ${result.header.sopInstanceUid} ${sha}\n`);
    });
  });
  await Promise.all(batch);
}
