// Binding windows: how a kernel reaches tensors that are larger than one binding.
//
// WebGPU binds at most maxStorageBufferBindingSize bytes of a buffer at a time (128 MiB on lavapipe, 2 GiB − 4 on an
// H200), at byte offsets that are multiples of minStorageBufferOffsetAlignment; a buffer itself may be as large as
// maxBufferSize. A tensor is (buffer, element offset, size). Every dispatch binds, for each buffer it uses, the window
// of that buffer that covers the elements its tensors occupy there (`bind`), and passes each tensor's offset relative
// to the window. An op whose tensors do not fit one window runs in pieces: it cuts a dimension into blocks
// (`rowsPerPiece`, or the GEMM's own blocking in gemm.ts) so that every piece's tensors are views that do fit.
// `limitBytes` may be set below the adapter's limit (WebGpuBackend.open's maxBindingBytes, for tests): tiny tensors are
// then split the way a 151,936-row embedding is split on a real GPU.

/** Where a dispatch reads a buffer: the binding, and the element of the buffer at its start. */
export interface BoundWindow {
  readonly base: number;
  readonly binding: GPUBufferBinding;
}

export class BindingWindows {
  /** Elements of the longest contiguous range that fits one window wherever it starts. */
  readonly maxSpan: number;

  constructor(
    /** Bytes one binding may cover. */
    readonly limitBytes: number,
    /** Bytes a binding's offset must be a multiple of (minStorageBufferOffsetAlignment). */
    readonly alignBytes: number,
  ) {
    if (!(Number.isInteger(alignBytes) && alignBytes >= 4 && alignBytes % 4 === 0)) throw new RangeError(`binding windows: offset alignment ${alignBytes} is not a multiple of 4`);
    // A range starting anywhere begins at most alignBytes − 4 bytes after its window's (aligned) start.
    this.maxSpan = Math.floor((limitBytes - alignBytes) / 4) + 1;
    if (this.maxSpan < 16) throw new RangeError(`binding windows: a limit of ${limitBytes} bytes with ${alignBytes}-byte offsets leaves no room`);
  }

  /**
   * The window of `buffer` covering its elements [lo, hi), for `op`'s error message when it is larger than one
   * binding. `granule` rounds the binding's size up (16 where the kernel reads vec4s), within the buffer.
   */
  bind(buffer: GPUBuffer, lo: number, hi: number, op: string, granule = 4): BoundWindow {
    let off = Math.floor((lo * 4) / this.alignBytes) * this.alignBytes;
    const end = Math.min(Math.ceil(Math.max(hi * 4, off + 4) / granule) * granule, buffer.size);
    if (end <= off) off = Math.floor((end - granule) / this.alignBytes) * this.alignBytes; // an empty view at the very end
    if (end - off > this.limitBytes)
      throw new RangeError(
        `webgpu ${op}: its tensors in one buffer span ${end - off} bytes (elements ${lo}…${hi - 1}), more than one binding ` +
          `(${this.limitBytes} bytes); this op does not split them: use fewer tokens per batch or a smaller model`,
      );
    return { base: off / 4, binding: { buffer, offset: off, size: end - off } };
  }

  /**
   * Rows per piece when an op over R rows runs in pieces: each piece takes `perRow[j]` consecutive elements per row of
   * its j-th row-split tensor, and every piece must fit one window. `whole` are the sizes of tensors every piece binds
   * entirely (weights, tables), which must fit as they are.
   */
  rowsPerPiece(op: string, R: number, perRow: readonly number[], whole: ReadonlyArray<readonly [name: string, size: number]> = []): number {
    for (const [name, size] of whole)
      if (size > this.maxSpan) throw new RangeError(`webgpu ${op}: ${name} (${size * 4} bytes) is larger than one binding (${this.limitBytes} bytes) and this op does not split it`);
    const widest = Math.max(1, ...perRow);
    if (widest > this.maxSpan) throw new RangeError(`webgpu ${op}: one row of ${widest * 4} bytes is larger than one binding (${this.limitBytes} bytes)`);
    return Math.max(1, Math.min(R, Math.floor(this.maxSpan / widest)));
  }
}

/** The blocks [start, start + n) of `total` in steps of `step` (one empty block when total is 0). */
export function* blocks(total: number, step: number): Generator<readonly [start: number, n: number]> {
  if (total === 0) {
    yield [0, 0];
    return;
  }
  for (let s = 0; s < total; s += step) yield [s, Math.min(step, total - s)];
}
