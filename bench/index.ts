/**
 * `npm run bench -- <name>...` runs the named benchmarks (all when none is named). Each lives in
 * bench/<name>.ts and exports `run(): Promise<void>`, printing its table with our numbers beside
 * DCMTK's and Orthanc's and the ratios.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((name) => name.endsWith('.ts') && name !== 'index.ts' && !name.startsWith('_'))
  .map((name) => name.replace(/\.ts$/, ''))
  .sort();

const requested = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const names = requested.length > 0 ? requested : available;
for (const name of names) {
  const file = join(here, `${name}.ts`);
  if (!existsSync(file)) {
    console.error(`unknown benchmark ${JSON.stringify(name)}; available: ${available.join(', ')}`);
    process.exit(2);
  }
  const module = (await import(pathToFileURL(file).href)) as { run: () => Promise<void> };
  console.log(`\n=== bench: ${name} ===`);
  await module.run();
}
