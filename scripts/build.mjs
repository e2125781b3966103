#!/usr/bin/env node
// Builds what runs outside tsx: the core as ESM JavaScript (dist/), the Electron main and preload bundles,
// and the renderer (when present). `--core`: the core only (what the headless server runs; the benchmarks
// build it so to measure the appliance as production runs it).
import { build } from 'esbuild';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function sources(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (path.endsWith('.ts') && !path.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

// The core stays unbundled ESM so native modules and dynamic imports resolve from node_modules.
await build({
  entryPoints: sources('main/core'),
  outdir: 'dist/main/core',
  outbase: 'main/core',
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: true,
  logLevel: 'warning',
});

const coreOnly = process.argv.includes('--core');

if (!coreOnly && existsSync('main/electron/main.ts')) {
  await build({
    entryPoints: ['main/electron/main.ts'],
    outfile: 'dist/electron/main.cjs',
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    external: ['electron', 'better-sqlite3', 'dcmjs-codecs', 'dcmjs-imaging', 'pino', 'pino-roll', 'thread-stream', 'piscina', 'sharp'],
    // The core is ESM and finds its files from import.meta.url, which a CommonJS bundle does not have.
    define: { 'import.meta.url': '__bundleFileUrl' },
    banner: { js: "const __bundleFileUrl = require('node:url').pathToFileURL(__filename).href;" },
    sourcemap: true,
    logLevel: 'warning',
  });
  // The image worker threads load a file of their own; the bundled core finds it beside main.cjs (web/image-pool.ts).
  await build({
    entryPoints: ['main/core/web/image-worker.ts'],
    outfile: 'dist/electron/image-worker.cjs',
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    external: ['dcmjs-codecs', 'dcmjs-imaging', 'piscina', 'sharp'],
    define: { 'import.meta.url': '__bundleFileUrl' },
    banner: { js: "const __bundleFileUrl = require('node:url').pathToFileURL(__filename).href;" },
    sourcemap: true,
    logLevel: 'warning',
  });
  // Likewise the ingest thread (store/ingest-thread.ts).
  await build({
    entryPoints: ['main/core/store/ingest-worker.ts'],
    outfile: 'dist/electron/ingest-worker.cjs',
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    external: ['piscina'],
    define: { 'import.meta.url': '__bundleFileUrl' },
    banner: { js: "const __bundleFileUrl = require('node:url').pathToFileURL(__filename).href;" },
    sourcemap: true,
    logLevel: 'warning',
  });
}
if (!coreOnly && existsSync('preload/index.ts')) {
  await build({
    entryPoints: ['preload/index.ts'],
    outfile: 'dist/preload/index.cjs',
    bundle: true,
    platform: 'node',
    format: 'cjs',
    external: ['electron'],
    logLevel: 'warning',
  });
}
if (!coreOnly && existsSync('renderer/vite.config.ts')) {
  const result = spawnSync(process.execPath, ['node_modules/vite/bin/vite.js', 'build', '--config', 'renderer/vite.config.ts'], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
