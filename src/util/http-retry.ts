// Pieces of the HTTP retry logic shared by the remote rollout backend (src/eval/remote-backend.ts) and the LLM
// judge (src/verify/judge.ts): a counting semaphore for requests in flight, sleep, and the backoff delay.
// Each client keeps its own request/attempt code, since their error messages, URL display and Retry-After parsing
// differ and tests match on them.

/** Tiny counting semaphore. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next(); // the slot passes directly to the next waiter
    else this.active--;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wait before retry number `attempt + 1` (attempt counts from 0): `backoffMs * 2^attempt` with jitter in
 * [50%, 100%], raised to `retryAfterMs` when the server sent one, capped at `maxBackoffMs`.
 */
export function backoffDelay(attempt: number, backoffMs: number, maxBackoffMs: number, retryAfterMs: number | null): number {
  const exp = backoffMs * 2 ** attempt;
  const jittered = exp * (0.5 + Math.random() * 0.5);
  return Math.min(maxBackoffMs, Math.max(jittered, retryAfterMs ?? 0));
}
