// The `oreal` command as a user meets it: the installed bin, usage errors, the error prefix, help texts.
// Per-command behaviour lives in the command's own test file; these cover what every command shares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
const BIN = path.join(repoRoot, pkg.bin['oreal'] as string);

/** Run `oreal ARGS` with node (the bin's executable bit is the first test's business). */
function oreal(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000, cwd: repoRoot });
}

test('the bin named in package.json is executable after a build from scratch and runs --help', () => {
  // `npm test` removes dist/ and rebuilds it just before this runs: the bin must survive that.
  accessSync(BIN, constants.X_OK);
  assert.ok((statSync(BIN).mode & 0o111) === 0o111, `mode ${(statSync(BIN).mode & 0o777).toString(8)} of ${BIN}`);
  assert.ok(
    pkg.files.some((f) => pkg.bin['oreal']!.startsWith(f)),
    `package.json "files" does not ship the bin ${pkg.bin['oreal']}`,
  );
  // Run it by its path, as `npx oreal` does: the kernel needs the executable bit and the #! line.
  const r = spawnSync(BIN, ['--help'], { encoding: 'utf8', timeout: 30_000, cwd: repoRoot });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: oreal /);
});

test('a usage error prints "oreal: error: ..." and one line pointing to --help, not the whole help', () => {
  const cases: Array<{ args: string[]; message: RegExp; help: string }> = [
    { args: ['eval', '--samples', 'x'], message: /^oreal: error: option '--samples <n>' argument 'x' is invalid\. expected a positive integer$/, help: 'oreal eval' },
    { args: ['verify', '--bogus'], message: /^oreal: error: unknown option '--bogus'$/, help: 'oreal verify' },
    { args: ['verify', '--output', 'x.jsonl'], message: /^oreal: error: --output needs --input$/, help: 'oreal verify' },
    { args: ['serve'], message: /^oreal: error: required option '--model <dir>' not specified$/, help: 'oreal serve' },
    { args: ['debug', 'loss'], message: /^oreal: error: required option '--policy <dir>' not specified$/, help: 'oreal debug loss' },
    { args: ['nonsense'], message: /^oreal: error: unknown command 'nonsense'$/, help: 'oreal' },
  ];
  for (const c of cases) {
    const r = oreal(c.args);
    assert.equal(r.status, 1, `${c.args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 2, `${c.args.join(' ')}:\n${r.stderr}`);
    assert.match(lines[0] ?? '', c.message);
    assert.equal(lines[1], `(run '${c.help} --help' for usage)`);
    assert.doesNotMatch(r.stderr, /Usage:/);
  }
});

test('a failure inside a command has the same prefix as a usage error', () => {
  const r = oreal(['eval', '--responses', path.join(repoRoot, 'no-such-file.jsonl'), '--k', '1']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^oreal: error: .*no-such-file\.jsonl: cannot read: ENOENT/);
});

/** `oreal ... --help` of every command and sub-command, found from the help texts themselves. */
function allHelps(): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (cmd: string[]): void => {
    const r = oreal([...cmd, '--help']);
    assert.equal(r.status, 0, `${cmd.join(' ')} --help: ${r.stderr}`);
    out.set(['oreal', ...cmd].join(' '), r.stdout);
    const section = r.stdout.split(/^Commands:$/m)[1];
    if (section === undefined) return;
    for (const m of section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)) if (m[1] !== 'help') visit([...cmd, m[1] as string]);
  };
  visit([]);
  return out;
}

test('help texts: start listed first, required options marked, no pointer to files the package does not ship', () => {
  const helps = allHelps();
  for (const name of ['oreal start', 'oreal train', 'oreal eval', 'oreal sft', 'oreal serve', 'oreal bench decode', 'oreal debug loss']) {
    assert.ok(helps.has(name), `${name} missing from the help tree: ${[...helps.keys()].join(', ')}`);
  }
  const top = helps.get('oreal') as string;
  const commands = [...(top.split(/^Commands:$/m)[1] ?? '').matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((m) => m[1]);
  assert.equal(commands[0], 'start', `commands listed: ${commands.join(', ')}`);

  // serve's --model is required: its help says so.
  const serveModel = /^ {2}--model <dir>(.*\n)(?: {4,}.*\n)*/m.exec(helps.get('oreal serve') as string)?.[0] ?? '';
  assert.match(serveModel.replace(/\s+/g, ' '), /\(required\)/);
  assert.match((helps.get('oreal sft') as string).replace(/\s+/g, ' '), /--config <file> .*\(required\)/);
  // Optional options are not marked.
  assert.doesNotMatch(/^ {2}--port.*$/m.exec(helps.get('oreal serve') as string)?.[0] ?? '', /required/);

  // The package ships dist/src (compiled), not src/*.ts: a help text that sends the reader to a source file sends
  // them nowhere. sft --help lists its config keys instead.
  for (const [name, text] of helps) assert.doesNotMatch(text, /\bsrc\/\S+\.ts\b/, `${name} --help points to a source file`);
  const sft = helps.get('oreal sft') as string;
  for (const key of ['train_file', 'output_dir', 'model', 'max_seq_len', 'chat_template']) assert.match(sft, new RegExp(`^ {2}${key}\\b`, 'm'), `sft --help lacks ${key}`);
});

test('a model directory that does not exist is reported as such, before anything is loaded or written', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'oreal-cli-modeldir-'));
  try {
    const missing = path.join(tmp, 'no-such-model');
    const data = path.join(tmp, 'bench.jsonl');
    writeFileSync(data, `${JSON.stringify({ problem: '1+1?', answer: '2' })}\n`);
    const flagCases: string[][] = [
      ['eval', '--model', missing, '--data', data, '--samples', '1', '--out', path.join(tmp, 'eval-out')],
      ['generate', '--model', missing, '--prompt', 'hi'],
      ['serve', '--model', missing],
      ['bench', 'decode', '--model', missing],
    ];
    for (const args of flagCases) {
      const r = oreal(args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^oreal: error: option '--model <[^>]+>' argument '.*no-such-model' is invalid\\. model directory not found: .*no-such-model\\n`), args.join(' '));
    }
    assert.ok(!existsSync(path.join(tmp, 'eval-out')), 'eval wrote its --out before finding the model missing');
    const notDir = oreal(['generate', '--model', data, '--prompt', 'hi']);
    assert.match(notDir.stderr, /not a directory: .*bench\.jsonl/);

    // Model paths inside configs: named with the file and the key.
    const runDir = path.join(tmp, 'run');
    const train = oreal(['train', '--config', path.join(repoRoot, 'configs', 'tiny-test.yaml'), '--set', `actor=${missing}`, '--out', runDir]);
    assert.equal(train.status, 1, train.stderr);
    assert.match(train.stderr, /^oreal: error: .*tiny-test\.yaml: actor: model directory not found: .*no-such-model\n/);
    assert.ok(!existsSync(runDir), 'train made its run directory before finding the model missing');
    const sftConfig = path.join(tmp, 'sft.yaml');
    writeFileSync(sftConfig, `model: ${missing}\ntrain_file: ${data}\noutput_dir: ${path.join(tmp, 'sft-out')}\n`);
    const sft = oreal(['sft', '--config', sftConfig]);
    assert.equal(sft.status, 1, sft.stderr);
    assert.match(sft.stderr, /^oreal: error: .*sft\.yaml: model: model directory not found: .*no-such-model\n/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
