// The `oreal` command as a user meets it: the installed bin, usage errors, the error prefix, help texts.
// Per-command behaviour lives in the command's own test file; these cover what every command shares.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string>; files: string[] };
const BIN = path.join(repoRoot, pkg.bin['oreal'] as string);

/** Run the bin itself (as `npx oreal` does: by its path, so the kernel needs its executable bit). */
function oreal(args: string[]): SpawnSyncReturns<string> {
  return spawnSync(BIN, args, { encoding: 'utf8', timeout: 30_000, cwd: repoRoot });
}

test('the bin named in package.json is executable after a build from scratch and runs --help', () => {
  // `npm test` removes dist/ and rebuilds it just before this runs: the bin must survive that.
  accessSync(BIN, constants.X_OK);
  assert.ok((statSync(BIN).mode & 0o111) === 0o111, `mode ${(statSync(BIN).mode & 0o777).toString(8)} of ${BIN}`);
  assert.ok(
    pkg.files.some((f) => pkg.bin['oreal']!.startsWith(f)),
    `package.json "files" does not ship the bin ${pkg.bin['oreal']}`,
  );
  const r = oreal(['--help']);
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^Usage: oreal /);
});
