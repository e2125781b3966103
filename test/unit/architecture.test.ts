import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import ts from 'typescript';

// The rooms of docs/architecture.md are checked by `npm run lint:deps` (dependency-cruiser); these tests run
// that same command, as .ci/run does.
const root = new URL('../../', import.meta.url);

function lintDeps(...extra: string[]): { status: number | null; output: string } {
  const result = spawnSync('npm', ['run', '--silent', 'lint:deps', ...(extra.length > 0 ? ['--', ...extra] : [])], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface KnownViolation {
  from: string;
  to: string;
  rule: { name: string };
}

describe('the rooms of the house, checked by dependency-cruiser', () => {
  /** Adds a module `folder/__probe-<pid>.ts` holding one wrong import, and expects the check to fail on `rule`. */
  function expectRefused(folder: string, source: string, rule: string, target: string): void {
    const probe = `${folder}/__probe-${process.pid}.ts`;
    const probeUrl = new URL(probe, root);
    writeFileSync(probeUrl, source);
    try {
      const { status, output } = lintDeps();
      assert.notEqual(status, 0, output);
      assert.match(output, new RegExp(`error ${rule}: ${probe.replaceAll('.', '\\.')} → ${target.replaceAll('.', '\\.')}`));
    } finally {
      rmSync(probeUrl, { force: true });
    }
  }

  test('an import that breaks a rule fails the check and names the rule', () => {
    expectRefused('main/core/dicom', "import { Archive } from '../store/archive.js';\n\nexport const probe = Archive;\n",
      'dicom-imports-nothing-of-ours', 'main/core/store/archive.ts');
  });

  test('the contract, which goes into the page, takes nothing from dicom/ but the DICOM JSON model', () => {
    expectRefused('main/core/contract', "import { tagOf } from '../dicom/dictionary.js';\n\nexport const probe = tagOf('PatientName');\n",
      'contract-takes-from-dicom-only-pure-models', 'main/core/dicom/dictionary.ts');
  });

  test('multipart/, the HTTP framing under web/ and forward/, knows no DICOM and no other room', () => {
    expectRefused('main/core/multipart', "import { tagOf } from '../dicom/dictionary.js';\n\nexport const probe = tagOf('PatientName');\n",
      'multipart-imports-nothing-of-ours', 'main/core/dicom/dictionary.ts');
  });

  test('runtime/, which every room may use, imports no room of ours', () => {
    expectRefused('main/core/runtime', "import { tagOf } from '../dicom/dictionary.js';\n\nexport const probe = tagOf('PatientName');\n",
      'runtime-imports-nothing-of-ours', 'main/core/dicom/dictionary.ts');
  });

  test('rendering and conversion run only in the image worker threads, never on the event loop', () => {
    expectRefused('main/core/web', "import { renderImage } from './image-render.js';\n\nexport const probe = renderImage;\n",
      'image-work-runs-in-the-workers', 'main/core/web/image-render.ts');
  });

  test('the tree keeps the rules, and each known violation listed in the config still exists', () => {
    const config = createRequire(import.meta.url)('../../.dependency-cruiser.cjs') as { options: { knownViolations: KnownViolation[] } };
    const { status, output } = lintDeps('--output-type', 'json');
    const result = JSON.parse(output) as {
      summary: { error: number };
      modules: Array<{ source: string; dependencies: Array<{ resolved: string; rules?: Array<{ name: string; severity: string }> }> }>;
    };
    assert.equal(status, 0);
    assert.equal(result.summary.error, 0);
    const softened = new Set<string>();
    for (const module of result.modules) {
      for (const dependency of module.dependencies) {
        for (const rule of dependency.rules ?? []) {
          if (rule.severity === 'ignore') softened.add(`${rule.name}: ${module.source} → ${dependency.resolved}`);
        }
      }
    }
    const stale = config.options.knownViolations
      .map((known) => `${known.rule.name}: ${known.from} → ${known.to}`)
      .filter((known) => !softened.has(known));
    assert.deepEqual(stale, [], 'these known violations are gone: remove them from .dependency-cruiser.cjs');
  });

  test('SQL runs only in store/: no other module of main/ prepares a statement', () => {
    const main = new URL('main/', root);
    const preparing = (readdirSync(main, { recursive: true }) as string[])
      .filter((file) => file.endsWith('.ts') && !file.startsWith('core/store/'))
      .filter((file) => readFileSync(new URL(file, main), 'utf8').includes('prepare('));
    assert.deepEqual(preparing, []);
  });

  test('every DICOM tag is named by keyword through dicom/dictionary.ts: no string of main/ spells one in hex', () => {
    // String literals only, read by TypeScript's parser: a comment may show what a tag looks like.
    // Files that may still spell tags, each with its reason. A file that no longer does must leave the list.
    const allowed: Record<string, string> = {
      'core/contract/dicom-json.ts': "the page's contract cannot load the dictionary; test/unit/dicom-dictionary.test.ts holds it to it",
    };
    const main = new URL('main/', root);
    const spelt = new Map<string, string[]>();
    for (const file of readdirSync(main, { recursive: true }) as string[]) {
      if (!file.endsWith('.ts')) continue;
      const source = ts.createSourceFile(file, readFileSync(new URL(file, main), 'utf8'), ts.ScriptTarget.Latest);
      const visit = (node: ts.Node): void => {
        if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /^[0-9A-Fa-f]{8}$/.test(node.text)) {
          const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
          spelt.set(file, [...(spelt.get(file) ?? []), `${line + 1}: '${node.text}'`]);
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    const offending = [...spelt].filter(([file]) => !(file in allowed)).map(([file, where]) => `main/${file} ${where.join(', ')}`);
    assert.deepEqual(offending, [], 'name these tags by keyword (tagOf, tagsOf from main/core/dicom/dictionary.ts)');
    const stale = Object.keys(allowed).filter((file) => !spelt.has(file));
    assert.deepEqual(stale, [], 'these files spell no tag any more: remove them from the allowed list');
  });
});
