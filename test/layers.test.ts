// No upward imports: each folder of src/ imports only folders of a lower layer (and itself), so the math and engine
// layers never depend on the trainer, the server or the CLI. The layers, bottom first, are the ranks below; a new
// folder must be given one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

const RANK: Record<string, number> = {
  util: 0,
  engine: 1,
  report: 1,
  model: 2,
  verify: 2,
  sample: 3,
  rl: 3,
  task: 4,
  eval: 4,
  serve: 4,
  train: 5,
  'main-job': 6,
  ablate: 7,
  cli: 8,
  'index.ts': 9,
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** The top folder of src/ a file belongs to (`index.ts` for src/index.ts). */
const layerOf = (file: string): string => relative(src, file).split(sep)[0]!;

test('src/ has no upward imports', () => {
  const files = tsFiles(src);
  assert.ok(files.length > 50, `found only ${files.length} source files under ${src}`);
  const upward: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    assert.ok(from in RANK, `${relative(src, file)}: folder ${from} has no layer in test/layers.test.ts`);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(?:import|export)\b[^;]*?from\s+'(\.[^']+)'/gms)) {
      const target = resolve(dirname(file), m[1]!);
      if (!target.startsWith(src + sep)) continue;
      const to = layerOf(target);
      if (to !== from && !(RANK[to]! < RANK[from]!)) upward.push(`${relative(src, file)} -> ${relative(src, target)}`);
    }
  }
  assert.deepEqual(upward, []);
});
