/**
 * When a failed call is tried again, and after how long: the same rules and
 * defaults as the Python client's `RetryPolicy`.
 */
import { AbortedError, type StrataError, UnavailableError } from "./errors.js";

/**
 * How a call is retried after a transient failure.
 *
 * A call is retried after UNAVAILABLE when it is safe to send twice: reads
 * always, writes only when they carry a `requestId` (the server then applies
 * them once). After ABORTED with reason CONCURRENT_MODIFICATION every call is
 * retried, because the server wrote nothing. Other errors are thrown at once.
 */
export interface RetryPolicy {
  /** Attempts in all, the first one included; 1 turns retries off. Default 4. */
  maxAttempts: number;
  /** Milliseconds to wait before the first retry. Default 50. */
  initialBackoffMs: number;
  /** Upper bound of the wait before any one retry, in milliseconds. Default 2000. */
  maxBackoffMs: number;
  /** Factor by which the wait grows from one retry to the next. Default 2. */
  multiplier: number;
  /**
   * Fraction of each wait, from 0 to 1, taken off at random, so that clients
   * which failed together do not all retry at the same moment. Default 0.2.
   */
  jitter: number;
}

/** The defaults of {@link RetryPolicy}. */
export const DEFAULT_RETRY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 4,
  initialBackoffMs: 50,
  maxBackoffMs: 2000,
  multiplier: 2,
  jitter: 0.2,
});

/** ErrorInfo reason of an ABORTED call that lost a race and wrote nothing. */
export const CONCURRENT_MODIFICATION = "CONCURRENT_MODIFICATION";

/** A complete policy from a partial one; throws RangeError for nonsense. */
export function retryPolicy(given: Partial<RetryPolicy> = {}): RetryPolicy {
  const policy = { ...DEFAULT_RETRY, ...given };
  if (!Number.isInteger(policy.maxAttempts) || policy.maxAttempts < 1) {
    throw new RangeError("retry.maxAttempts must be an integer of at least 1");
  }
  if (!(policy.initialBackoffMs > 0 && policy.initialBackoffMs <= policy.maxBackoffMs)) {
    throw new RangeError("retry needs 0 < initialBackoffMs <= maxBackoffMs");
  }
  if (!(policy.multiplier >= 1)) throw new RangeError("retry.multiplier must be at least 1");
  if (!(policy.jitter >= 0 && policy.jitter <= 1)) {
    throw new RangeError("retry.jitter must be between 0 and 1");
  }
  return policy;
}

/** Whether trying again may succeed without applying a write twice. */
export function isTransient(error: StrataError, idempotent: boolean): boolean {
  if (error instanceof AbortedError && error.reason === CONCURRENT_MODIFICATION) return true;
  return idempotent && error instanceof UnavailableError;
}

/**
 * The waits, in milliseconds, before the first, second, ... retry: growing by
 * `multiplier` from `initialBackoffMs` up to `maxBackoffMs`, each shortened at
 * random by up to `jitter` of itself.
 */
export function* backoffDelays(
  policy: RetryPolicy,
  random: () => number = Math.random,
): Generator<number, never> {
  let delay = policy.initialBackoffMs;
  for (;;) {
    yield delay * (1 - policy.jitter * random());
    delay = Math.min(delay * policy.multiplier, policy.maxBackoffMs);
  }
}

/** The attempts of one call: decides after each failure whether to try again. */
export class RetrySchedule {
  private attemptsLeft: number;
  private readonly delays: Generator<number, never>;

  constructor(
    policy: RetryPolicy,
    private readonly idempotent: boolean,
  ) {
    this.attemptsLeft = policy.maxAttempts - 1;
    this.delays = backoffDelays(policy);
  }

  /**
   * Milliseconds to wait before trying again after `error`, or undefined when
   * the error is not transient or no attempt is left (then throw it).
   */
  backoff(error: StrataError): number | undefined {
    if (this.attemptsLeft <= 0 || !isTransient(error, this.idempotent)) return undefined;
    this.attemptsLeft -= 1;
    return this.delays.next().value;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason once it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
