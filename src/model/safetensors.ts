// safetensors reading and writing, tensor by tensor.
//
// File layout: 8-byte little-endian header length N, N bytes of JSON header, then the raw data buffer. The header maps
// tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data buffer) plus an optional
// "__metadata__" string map. Reading opens a file descriptor and reads each tensor into its own buffer, so a model is
// never held twice; writing streams each tensor (converted in chunks) into a temp file that is renamed into place.
//
// Sharded checkpoints: `model.safetensors.index.json` = {metadata: {total_size}, weight_map: {name: shard file}}.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeAll, writeAtomically, writeFileAtomic } from '../util/atomic-write.js';

/** Dtypes this module reads (all converted to f32) and writes. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

/** A dense row-major f32 tensor. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Byte offsets relative to the start of the data buffer. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsHeader {
  /** Tensors in file order (ascending offsets). */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>> | null;
  /** Absolute file offset of the data buffer (8 + header length). */
  readonly dataStart: number;
  readonly fileSize: number;
}

export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    detail: string,
    readonly tensor?: string,
  ) {
    super(tensor === undefined ? `${file}: ${detail}` : `${file}: tensor "${tensor}": ${detail}`);
    this.name = 'SafetensorsError';
  }
}

const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
const LITTLE_ENDIAN = os.endianness() === 'LE';

export function dtypeBytes(dtype: SafetensorsDtype): number {
  return DTYPE_BYTES[dtype];
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function readFully(fd: number, buf: Uint8Array, position: number, file: string, tensor?: string): void {
  let off = 0;
  while (off < buf.byteLength) {
    const chunk = Math.min(buf.byteLength - off, 1 << 30);
    const n = fs.readSync(fd, buf, off, chunk, position + off);
    if (n === 0) throw new SafetensorsError(file, `unexpected end of file at byte ${position + off}`, tensor);
    off += n;
  }
}

/** Parses and validates a header given the raw file prefix reader. */
function parseHeader(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(file, `file is ${fileSize} bytes, too short for a safetensors header`);
  const lenBuf = Buffer.alloc(8);
  readFully(fd, lenBuf, 0, file);
  const headerLen64 = lenBuf.readBigUInt64LE(0);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(file, `header length ${headerLen64} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLen = Number(headerLen64);
  if (8 + headerLen > fileSize) {
    throw new SafetensorsError(file, `header length ${headerLen} runs past the end of the ${fileSize}-byte file`);
  }
  const hbuf = Buffer.alloc(headerLen);
  readFully(fd, hbuf, 8, file);
  const text = hbuf.toString('utf8');
  if (!text.startsWith('{')) throw new SafetensorsError(file, 'header does not start with "{"');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(file, 'header is not a JSON object');
  }
  const dataStart = 8 + headerLen;
  const dataSize = fileSize - dataStart;
  let metadata: Record<string, string> | null = null;
  const tensors: TensorInfo[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new SafetensorsError(file, '"__metadata__" must be an object of strings');
      }
      metadata = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new SafetensorsError(file, `"__metadata__.${k}" must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(parseTensorEntry(file, name, value, dataSize));
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin < cursor) throw new SafetensorsError(file, `data_offsets [${t.begin}, ${t.end}] overlap the previous tensor`, t.name);
    if (t.begin > cursor) throw new SafetensorsError(file, `gap in the data buffer before offset ${t.begin} (expected ${cursor})`, t.name);
    cursor = t.end;
  }
  if (cursor !== dataSize) {
    throw new SafetensorsError(file, `tensors cover ${cursor} bytes but the data buffer is ${dataSize} bytes`);
  }
  return { tensors, metadata, dataStart, fileSize };
}

function parseTensorEntry(file: string, name: string, value: unknown, dataSize: number): TensorInfo {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new SafetensorsError(file, 'header entry is not an object', name);
  }
  const v = value as Record<string, unknown>;
  const dtype = v['dtype'];
  if (typeof dtype !== 'string') throw new SafetensorsError(file, 'missing "dtype"', name);
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) {
    throw new SafetensorsError(file, `unsupported dtype ${dtype} (supported: F32, F16, BF16)`, name);
  }
  const shape = v['shape'];
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `"shape" must be an array of non-negative integers (got ${JSON.stringify(shape)})`, name);
  }
  const offs = v['data_offsets'];
  if (
    !Array.isArray(offs) ||
    offs.length !== 2 ||
    !offs.every((o): o is number => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw new SafetensorsError(file, `"data_offsets" must be [begin, end] non-negative integers (got ${JSON.stringify(offs)})`, name);
  }
  const [begin, end] = offs as [number, number];
  if (end < begin) throw new SafetensorsError(file, `data_offsets end ${end} < begin ${begin}`, name);
  if (end > dataSize) throw new SafetensorsError(file, `data_offsets end ${end} is past the ${dataSize}-byte data buffer`, name);
  const dt = dtype as SafetensorsDtype;
  const expected = numel(shape) * DTYPE_BYTES[dt];
  if (end - begin !== expected) {
    throw new SafetensorsError(
      file,
      `shape [${shape.join(', ')}] of ${dt} needs ${expected} bytes but data_offsets span ${end - begin}`,
      name,
    );
  }
  return { name, dtype: dt, shape: [...shape], begin, end };
}

/** Reads just the header of a safetensors file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    return parseHeader(fd, file);
  } finally {
    fs.closeSync(fd);
  }
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    throw new SafetensorsError(file, `cannot open: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// dtype conversion

let f16Table: Float32Array | null = null;

function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp === 31) v = mant === 0 ? Infinity : NaN;
    else v = (1 + mant / 1024) * 2 ** (exp - 15);
    t[h] = sign * v;
  }
  f16Table = t;
  return t;
}

/** Converts f16 bit patterns to f32 values. */
export function f16BitsToF32(src: Uint16Array, dst: Float32Array): void {
  const t = f16ToF32Table();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i]!]!;
}

/** Converts bf16 bit patterns to f32 values (exact). */
export function bf16BitsToF32(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
}

/** f32 → bf16 bits with round-to-nearest-even; every NaN becomes the quiet NaN 0x7fc0
 * (PyTorch's scalar path does the same; its vectorised path writes 0xffff, also a NaN). */
export function f32ToBf16Bits(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i]!;
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      dst[i] = 0x7fc0;
    } else {
      dst[i] = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
    }
  }
}

/** f32 → IEEE half bits with round-to-nearest-even, overflow to ±inf, gradual underflow. */
export function f32ToF16Bits(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    const mant = x & 0x7fffff;
    if (exp === 0xff) {
      dst[i] = sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
      continue;
    }
    const e = exp - 112; // rebias 127 → 15
    if (e >= 31) {
      dst[i] = sign | 0x7c00;
    } else if (e > 0) {
      let h = (e << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // a carry into the exponent is correct
      dst[i] = sign | h;
    } else {
      // Subnormal half (or zero): value = m · 2^(exp-150) with m = 1.mant; in half subnormal units (2^-24): m >> (14 - e).
      const shift = 14 - e;
      if (shift > 24 || exp === 0) {
        dst[i] = sign;
        continue;
      }
      const m = mant | 0x800000;
      let q = m >>> shift;
      const r = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (r > half || (r === half && (q & 1) === 1)) q += 1;
      dst[i] = sign | q;
    }
  }
}

function byteSwap(buf: Uint8Array, width: number): void {
  for (let i = 0; i + width <= buf.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = buf[a]!;
      buf[a] = buf[b]!;
      buf[b] = t;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// reading

/** An open safetensors file; `read` loads one tensor at a time into a fresh Float32Array. */
export class SafetensorsReader {
  readonly header: SafetensorsHeader;
  private readonly byName: Map<string, TensorInfo>;
  private fd: number | null;

  private constructor(
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
    try {
      this.header = parseHeader(fd, file);
    } catch (e) {
      fs.closeSync(fd);
      this.fd = null;
      throw e;
    }
    this.byName = new Map(this.header.tensors.map((t) => [t.name, t]));
  }

  static open(file: string): SafetensorsReader {
    return new SafetensorsReader(file, openForRead(file));
  }

  names(): string[] {
    return this.header.tensors.map((t) => t.name);
  }

  info(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  read(name: string): Tensor {
    const info = this.byName.get(name);
    if (!info) throw new SafetensorsError(this.file, 'not in this file', name);
    if (this.fd === null) throw new SafetensorsError(this.file, 'reader is closed', name);
    const n = numel(info.shape);
    const pos = this.header.dataStart + info.begin;
    const data = new Float32Array(n);
    if (info.dtype === 'F32') {
      const bytes = new Uint8Array(data.buffer);
      readFully(this.fd, bytes, pos, this.file, name);
      if (!LITTLE_ENDIAN) byteSwap(bytes, 4);
    } else {
      const half = new Uint16Array(n);
      const bytes = new Uint8Array(half.buffer);
      readFully(this.fd, bytes, pos, this.file, name);
      if (!LITTLE_ENDIAN) byteSwap(bytes, 2);
      if (info.dtype === 'BF16') bf16BitsToF32(half, data);
      else f16BitsToF32(half, data);
    }
    return { shape: [...info.shape], data };
  }

  /** Yields every tensor in file order, one buffer at a time. */
  *entries(): Generator<[string, Tensor]> {
    for (const t of this.header.tensors) yield [t.name, this.read(t.name)];
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** Loads every tensor of one safetensors file. */
export function readSafetensors(file: string): Map<string, Tensor> {
  const r = SafetensorsReader.open(file);
  try {
    return new Map(r.entries());
  } finally {
    r.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// writing

export interface WriteOptions {
  /** Stored dtype (default F32). */
  dtype?: SafetensorsDtype;
  /** `__metadata__` (default {format: "pt"}, which transformers expects). */
  metadata?: Record<string, string>;
}

const CHUNK_ELEMS = 1 << 20;

function checkTensor(file: string, name: string, t: Tensor): void {
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `invalid shape ${JSON.stringify(t.shape)}`, name);
  }
  if (numel(t.shape) !== t.data.length) {
    throw new SafetensorsError(file, `shape [${t.shape.join(', ')}] has ${numel(t.shape)} elements but data has ${t.data.length}`, name);
  }
  if (name.length === 0 || name === '__metadata__') throw new SafetensorsError(file, 'invalid tensor name', name);
}

/**
 * Writes tensors (in iteration order) to `file` atomically: streamed to a temp file next to it, fsynced, renamed.
 * Returns the number of bytes written.
 */
export function writeSafetensors(
  file: string,
  tensors: Iterable<readonly [string, Tensor]>,
  opts: WriteOptions = {},
): number {
  const dtype = opts.dtype ?? 'F32';
  if (!Object.hasOwn(DTYPE_BYTES, dtype)) throw new SafetensorsError(file, `cannot write dtype ${String(dtype)}`);
  const list: (readonly [string, Tensor])[] = [];
  const seen = new Set<string>();
  for (const entry of tensors) {
    checkTensor(file, entry[0], entry[1]);
    if (seen.has(entry[0])) throw new SafetensorsError(file, 'duplicate tensor name', entry[0]);
    seen.add(entry[0]);
    list.push(entry);
  }
  const header: Record<string, unknown> = { __metadata__: opts.metadata ?? { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of list) {
    const bytes = t.data.length * DTYPE_BYTES[dtype];
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerText = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(headerText, 'utf8') % 8)) % 8;
  headerText += ' '.repeat(pad);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length), 0);

  writeAtomically(file, (fd) => {
    writeAll(fd, prefix);
    writeAll(fd, headerBytes);
    const half = dtype === 'F32' ? null : new Uint16Array(CHUNK_ELEMS);
    const f32chunk = LITTLE_ENDIAN ? null : new Float32Array(CHUNK_ELEMS);
    for (const [, t] of list) {
      for (let s = 0; s < t.data.length; s += CHUNK_ELEMS) {
        const src = t.data.subarray(s, Math.min(t.data.length, s + CHUNK_ELEMS));
        if (half) {
          const dst = half.subarray(0, src.length);
          if (dtype === 'BF16') f32ToBf16Bits(src, dst);
          else f32ToF16Bits(src, dst);
          const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
          if (!LITTLE_ENDIAN) byteSwap(bytes, 2);
          writeAll(fd, bytes);
        } else if (f32chunk) {
          const c = f32chunk.subarray(0, src.length);
          c.set(src);
          const bytes = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
          byteSwap(bytes, 4);
          writeAll(fd, bytes);
        } else {
          writeAll(fd, new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
        }
      }
    }
  });
  return 8 + headerBytes.length + offset;
}

// ---------------------------------------------------------------------------------------------------------------------
// sharded checkpoints

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface ShardIndex {
  metadata: Record<string, unknown>;
  /** Tensor name → shard file name (relative to the index's directory). */
  weightMap: Map<string, string>;
}

/** Reads and validates `model.safetensors.index.json`. */
export function readShardIndex(file: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new SafetensorsError(file, `cannot read index: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SafetensorsError(file, 'index is not a JSON object');
  }
  const o = json as Record<string, unknown>;
  const wm = o['weight_map'];
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) {
    throw new SafetensorsError(file, 'field "weight_map" must be an object of tensor name → shard file');
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.length === 0 || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new SafetensorsError(file, `field "weight_map.${name}" must be a shard file name in the same directory (got ${JSON.stringify(shard)})`);
    }
    weightMap.set(name, shard);
  }
  const md = o['metadata'];
  const metadata = typeof md === 'object' && md !== null && !Array.isArray(md) ? { ...(md as Record<string, unknown>) } : {};
  return { metadata, weightMap };
}

/** The safetensors files of a checkpoint directory: the index's shards, or the single `model.safetensors`. */
export function checkpointTensorFiles(dir: string): { files: string[]; index: ShardIndex | null } {
  const indexPath = path.join(dir, INDEX_FILE);
  if (fs.existsSync(indexPath)) {
    const index = readShardIndex(indexPath);
    const files = [...new Set(index.weightMap.values())].sort();
    return { files: files.map((f) => path.join(dir, f)), index };
  }
  const single = path.join(dir, SINGLE_FILE);
  if (fs.existsSync(single)) return { files: [single], index: null };
  throw new SafetensorsError(dir, `no ${SINGLE_FILE} or ${INDEX_FILE} in the directory`);
}

/**
 * Yields every tensor of a checkpoint directory (sharded or not), one at a time, checking that the index and the
 * shards agree: every indexed tensor is found in its shard and no shard holds a tensor the index does not list.
 */
export function* iterCheckpointTensors(dir: string): Generator<[string, Tensor]> {
  const { files, index } = checkpointTensorFiles(dir);
  const found = new Set<string>();
  for (const file of files) {
    if (!fs.existsSync(file)) {
      throw new SafetensorsError(path.join(dir, INDEX_FILE), `shard ${path.basename(file)} is listed but missing`);
    }
    const r = SafetensorsReader.open(file);
    try {
      for (const t of r.header.tensors) {
        if (index) {
          const expected = index.weightMap.get(t.name);
          if (expected === undefined) {
            throw new SafetensorsError(file, `not listed in ${INDEX_FILE}`, t.name);
          }
          if (expected !== path.basename(file)) {
            throw new SafetensorsError(file, `${INDEX_FILE} says it is in ${expected}`, t.name);
          }
        }
        if (found.has(t.name)) throw new SafetensorsError(file, 'appears in more than one shard', t.name);
        found.add(t.name);
        yield [t.name, r.read(t.name)];
      }
    } finally {
      r.close();
    }
  }
  if (index) {
    for (const [name, shard] of index.weightMap) {
      if (!found.has(name)) throw new SafetensorsError(path.join(dir, shard), `listed in ${INDEX_FILE} but not in the shard`, name);
    }
  }
}

export interface ShardedWriteOptions extends WriteOptions {
  /** Largest shard size in bytes of tensor data (default: unlimited = one file). A larger tensor gets its own shard. */
  maxShardBytes?: number;
}

/**
 * Writes tensors into `dir` as `model.safetensors` (one shard) or as `model-0000i-of-0000n.safetensors` plus
 * `model.safetensors.index.json`, packing tensors in order until the next would pass `maxShardBytes`.
 * Returns the written file names.
 */
export function writeShardedSafetensors(
  dir: string,
  tensors: ReadonlyMap<string, Tensor> | Iterable<readonly [string, Tensor]>,
  opts: ShardedWriteOptions = {},
): string[] {
  const dtype = opts.dtype ?? 'F32';
  const max = opts.maxShardBytes ?? Infinity;
  if (!(max > 0)) throw new SafetensorsError(dir, `maxShardBytes must be positive (got ${max})`);
  const entries = [...tensors];
  const shards: (readonly [string, Tensor])[][] = [];
  let cur: (readonly [string, Tensor])[] = [];
  let curBytes = 0;
  let total = 0;
  for (const e of entries) {
    const bytes = e[1].data.length * DTYPE_BYTES[dtype];
    total += bytes;
    if (cur.length > 0 && curBytes + bytes > max) {
      shards.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(e);
    curBytes += bytes;
  }
  if (cur.length > 0 || shards.length === 0) shards.push(cur);
  fs.mkdirSync(dir, { recursive: true });
  if (shards.length === 1) {
    writeSafetensors(path.join(dir, SINGLE_FILE), shards[0]!, opts);
    return [SINGLE_FILE];
  }
  const n = shards.length;
  const pad = (i: number): string => String(i).padStart(5, '0');
  const names: string[] = [];
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const name = `model-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    writeSafetensors(path.join(dir, name), shard, opts);
    for (const [t] of shard) weightMap[t] = name;
    names.push(name);
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  const text = JSON.stringify(index, null, 2) + '\n';
  writeFileAtomic(path.join(dir, INDEX_FILE), text);
  names.push(INDEX_FILE);
  return names;
}
