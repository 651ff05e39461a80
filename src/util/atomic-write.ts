// Files and directories that are either whole or absent: written through a temp file (directory) in the same
// directory, then renamed into place, so a kill mid-write never leaves a torn file (run metrics, configs, summaries,
// trainer state, safetensors shards) or a half-written checkpoint.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes `file` atomically through `write`, which gets the temp file's descriptor (for streamed writers). */
export function writeAtomically(file: string, write: (fd: number) => void): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    write(fd);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

/** Writes all of `buf` to `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
}

/** Writes a whole file atomically (see the top of this file). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  writeAtomically(file, (fd) => writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data));
}

export interface DirAtomicOptions {
  /** Also remove `<dir>.tmp-*` / `<dir>.old-*` leftovers of earlier interrupted swaps (default false). */
  sweepLeftovers?: boolean;
}

/**
 * Writes a directory atomically: `fill` writes everything into `<dir>.tmp-*`, which is then renamed to `dir`. A
 * previous `dir` is moved aside first and deleted only once the new one is in place (restored if the rename fails), so
 * a kill at any point leaves either the old directory, the new one, or the old one as `<dir>.old-*`.
 */
export function writeDirAtomic(dir: string, fill: (tmp: string) => void, opts: DirAtomicOptions = {}): void {
  const target = path.resolve(dir);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const suffix = `${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const tmp = `${target}.tmp-${suffix}`;
  fs.mkdirSync(tmp);
  try {
    fill(tmp);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  let old: string | null = null;
  if (fs.existsSync(target)) {
    old = `${target}.old-${suffix}`;
    fs.renameSync(target, old);
  }
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    if (old !== null) fs.renameSync(old, target);
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (old !== null) fs.rmSync(old, { recursive: true, force: true });
  if (opts.sweepLeftovers) {
    const parent = path.dirname(target);
    const base = path.basename(target);
    for (const n of fs.readdirSync(parent))
      if (n.startsWith(`${base}.tmp-`) || n.startsWith(`${base}.old-`)) fs.rmSync(path.join(parent, n), { recursive: true, force: true });
  }
}
