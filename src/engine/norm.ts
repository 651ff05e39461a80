// The global L2 norm of a set of backend tensors (gradients, for clipping and metrics): one `sumSquares` op and one
// read of a single number, on any backend. Lives with the engine so that the RL layer and the optimizer share it
// without one importing the other.
import type { Backend } from './backend.js';
import type { F32 } from './tensor.js';

/** Global L2 norm of backend tensors. */
export async function gradNorm(backend: Backend, grads: Iterable<F32>): Promise<number> {
  const out = backend.empty([1]);
  try {
    backend.sumSquares([...grads], out);
    return Math.sqrt((await backend.read(out))[0]!);
  } finally {
    backend.free(out);
  }
}
