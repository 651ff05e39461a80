// Files that are either whole or absent: written through a temp file in the same directory, fsynced, then renamed
// into place, so a kill mid-write never leaves a torn file (run metrics, configs, summaries, trainer state).
import * as fs from 'node:fs';

/** Writes a file through a temp file in the same directory, fsyncs it, and renames it into place. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}
