/**
 * When a broken stream is opened again: what transcript reads and record watches
 * share (the Python client's `follow._Cursor.backoff`).
 *
 * A stream that breaks with UNAVAILABLE (the connection dropped, the server is
 * restarting), CANCELLED (the server shut down), or INTERNAL without an ErrorInfo
 * reason (the connection was reset mid-frame) is opened again from where the
 * reader stands, after the client's RetryPolicy backoff, for up to
 * `reconnectForMs` since the last message it got; then the last error is thrown.
 * Any other error (NOT_FOUND, INVALID_ARGUMENT, ...) is thrown at once.
 */
import { StrataError, UnavailableError } from "./errors.js";
import { type RetryPolicy, backoffDelays, sleep } from "./retry.js";

/** How long a resuming reader keeps trying. */
export interface ResumeOptions {
  /**
   * Milliseconds a reader keeps reconnecting after its stream broke, counted
   * from the last message it received; default 30000; `Infinity`: forever.
   */
  reconnectForMs?: number;
}

/** The default of {@link ResumeOptions.reconnectForMs}. */
export const DEFAULT_RECONNECT_FOR_MS = 30_000;

const RECONNECTABLE = new Set(["UNAVAILABLE", "CANCELLED", "INTERNAL"]);

/** The reconnects of one reader. */
export class Reconnects {
  /** How many times the stream was opened again. */
  count = 0;
  private readonly reconnectForMs: number;
  private delays: Generator<number, never>;
  private brokenSince: number | undefined;

  constructor(
    private readonly policy: RetryPolicy,
    options: ResumeOptions,
  ) {
    this.reconnectForMs = options.reconnectForMs ?? DEFAULT_RECONNECT_FOR_MS;
    this.delays = backoffDelays(policy);
  }

  /** A message arrived: the next break starts a new reconnect window and backoff. */
  reset(): void {
    this.brokenSince = undefined;
    this.delays = backoffDelays(this.policy);
  }

  /**
   * Wait before reopening a stream that broke with `error` (undefined: it ended
   * early without one); throws the error when reopening cannot help or the
   * window has run out.
   */
  async wait(error: StrataError | undefined, signal: AbortSignal | undefined): Promise<void> {
    if (error !== undefined && !reconnectable(error)) throw error;
    const now = performance.now();
    this.brokenSince ??= now;
    if (now - this.brokenSince > this.reconnectForMs) {
      throw error ?? new UnavailableError("the stream kept ending early");
    }
    this.count += 1;
    try {
      await sleep(this.delays.next().value, signal);
    } catch {
      // aborted: the caller sees its signal and stops
    }
  }
}

function reconnectable(error: StrataError): boolean {
  if (!(error instanceof StrataError) || !RECONNECTABLE.has(error.code)) return false;
  return error.code !== "INTERNAL" || error.reason === "";
}
