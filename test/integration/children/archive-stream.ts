// Child process for the streaming-memory test: retrieves a study from the archive at argv[2] and reads every
// part to its end, then prints one JSON line with the parts, their sizes and the process's peak RSS.
import { ArchiveReader } from '../../../main/core/cloud/archive-reader.js';

const reader = new ArchiveReader({ baseUrl: process.argv[2]!, auth: { authorization: async () => undefined } });
const sizes: number[] = [];
for await (const part of reader.retrieve({ studyUid: '1.2.3' })) {
  let size = 0;
  for await (const chunk of part.body) size += (chunk as Buffer).length;
  sizes.push(size);
}
await reader.close();
// maxRSS is in kilobytes.
process.stdout.write(`${JSON.stringify({ sizes, peakRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
