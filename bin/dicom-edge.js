#!/usr/bin/env node
// Headless entry point. Runs the compiled core (npm run build) when present, else the TypeScript source via tsx.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist', 'main', 'core', 'cli.js');
let cli;
if (existsSync(compiled)) {
  cli = await import(pathToFileURL(compiled).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(pathToFileURL(join(root, 'main', 'core', 'cli.ts')).href);
}
process.exit(await cli.main(process.argv.slice(2)));
