// Files that are either whole or absent: written through a temp file in the same directory, fsynced, then renamed
// into place, so a kill mid-write never leaves a torn file (run metrics, configs, summaries, trainer state,
// safetensors shards).
import * as fs from 'node:fs';

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
