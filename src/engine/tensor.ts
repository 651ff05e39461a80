// Tensors that live on a compute backend: a handle with a dtype, a shape, and a place in the backend's storage.
//
// Model code never touches a tensor's numbers directly: it calls backend ops on handles, and reads numbers back only
// where it must (`await backend.read(t)`: sampled ids, metrics, checkpoints). A CPU backend's handle wraps a typed
// array (for wasm, a view into its memory) and ops run at once; a GPU backend's handle names a device buffer and ops
// are enqueued, flushed by a read.
//
// A view (`backend.view(t, offset, shape)`) is a handle into the same storage at an element offset: packed rows of a
// batch, one layer of a KV cache, one parameter of a flat buffer. A GPU backend binds it as (buffer, offset·4 bytes).

export type DType = 'f32' | 'i32';

/** The host array type that holds a tensor of dtype D. */
export type HostArray<D extends DType> = D extends 'i32' ? Int32Array : Float32Array;

export interface DeviceTensor<D extends DType = DType> {
  readonly dtype: D;
  /** Row-major shape; its product is `size`. */
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly size: number;
  /** Element offset of this tensor in its storage (0 for a tensor the backend allocated). */
  readonly offset: number;
  /** The backend-owned storage the tensor lives in (shared by its views); opaque to model code. */
  readonly storage: object;
}

export type F32 = DeviceTensor<'f32'>;
export type I32 = DeviceTensor<'i32'>;

/** The product of a shape; throws on a dimension that is not a non-negative integer. */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`bad shape [${shape.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** Rows and columns of a tensor read as a matrix: the last dimension is the columns, the rest are rows. */
export function rowsCols(t: DeviceTensor): [number, number] {
  const s = t.shape;
  if (s.length === 0) return [1, 1];
  const cols = s[s.length - 1]!;
  return [cols === 0 ? 0 : t.size / cols, cols];
}
