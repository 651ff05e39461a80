#!/usr/bin/env node
// Builds the optional OpenBLAS addon (native/oreal_blas.c → build/Release/oreal_blas.node) with node-gyp, the one that
// ships with npm. Run by `npm install`/`npm ci` (package.json "install") and by `npm run build:native`.
// When the build cannot happen (no OpenBLAS headers, no compiler, no node-gyp, no Node headers) it prints one line and
// exits 0: the 'blas' backend is optional and the default wasm backend needs nothing. With OREAL_REQUIRE_BLAS=1 a
// failed build exits 1 instead (CI sets it after `apt-get install -y libopenblas-dev`).
// OREAL_SKIP_NATIVE=1 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const required = process.env.OREAL_REQUIRE_BLAS === '1';
const quiet = !process.argv.includes('--verbose');

function giveUp(why) {
  process.stdout.write(`oreal: BLAS addon not built (${why}); the default wasm backend is used\n`);
  process.exit(required ? 1 : 0);
}

if (process.env.OREAL_SKIP_NATIVE === '1' && !required) giveUp('OREAL_SKIP_NATIVE=1');
if (process.platform !== 'linux' && process.platform !== 'darwin') giveUp(`unsupported platform ${process.platform}`);

const cblasDirs = ['/usr/include/x86_64-linux-gnu/openblas-pthread', '/usr/include/openblas', '/usr/include',
  '/usr/local/include', '/opt/homebrew/opt/openblas/include'];
if (!cblasDirs.some((d) => existsSync(join(d, 'cblas.h')))) giveUp('cblas.h not found: apt-get install -y libopenblas-dev');

// node-gyp: the one npm runs scripts with, else the copy inside npm next to this node.
function findNodeGyp() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  const cands = [join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')];
  try {
    const req = createRequire(import.meta.url);
    cands.push(req.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not installed as a package
  }
  return cands.find((c) => existsSync(c));
}
const gyp = findNodeGyp();
if (!gyp) giveUp('node-gyp not found');

const args = [gyp, 'rebuild'];
// Use the local Node headers when present (offline machines cannot download them).
const nodeDir = resolve(dirname(process.execPath), '..');
if (!process.env.npm_config_nodedir && existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodeDir}`);
const r = spawnSync(process.execPath, args, { cwd: root, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8' });
if (r.status !== 0 || !existsSync(join(root, 'build', 'Release', 'oreal_blas.node'))) {
  if (quiet) {
    const lines = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').filter((l) => /error/i.test(l));
    if (required) process.stderr.write(`${r.stdout ?? ''}\n${r.stderr ?? ''}\n`);
    giveUp(`node-gyp failed${lines.length ? ': ' + lines[0].trim().slice(0, 160) : ''}`);
  }
  giveUp('node-gyp failed');
}
process.stdout.write('oreal: built build/Release/oreal_blas.node (OpenBLAS backend available: --backend blas)\n');
