/**
 * `queue.work(handler, options)`: the worker loop (the Python client's
 * `QueueHandle.work` and `strata._worker`).
 *
 * It leases as many jobs as it has idle slots (a LeaseJobs long poll, cancelled
 * when `signal` aborts), runs `handler` on each, extends each lease every third
 * of the lease duration while its handler runs, then settles the job:
 * - the handler resolved: ack, with what it resolved to as the job's result (a
 *   JSON object, or nothing); a result the server refuses fails the job instead;
 * - the handler threw: fail, with the error ("Name: message") as `lastError`,
 *   so the job is retried after its backoff or is dead after maxAttempts;
 * - the handler threw after `signal` aborted: release (runnable again at once,
 *   the attempt does not count), since it was interrupted rather than failed.
 * Each handler gets an AbortSignal that aborts when the worker is stopping or the
 * job's lease was lost (then the job is not acked: another worker may have it).
 * A lease call that fails for a transient reason is tried again after a backoff;
 * another error stops the worker, which rejects with it once the handlers in hand
 * have finished.
 */
import type { JsonObject } from "./convert.js";
import {
  AbortedError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  type StrataError,
  UnavailableError,
  toStrataError,
} from "./errors.js";
import { DEFAULT_LEASE_MS, type Job, type LeaseCalls, errorText } from "./jobs.js";
import { type RetryPolicy, backoffDelays, sleep } from "./retry.js";

/** What a handler gets besides its job. */
export interface JobContext {
  /** Aborts when the worker is stopping or the job's lease was lost. */
  signal: AbortSignal;
}

/**
 * Does one job: resolves to its result (a JSON object, or nothing) to ack it,
 * throws to fail it.
 */
export type Handler = (
  job: Job,
  context: JobContext,
) => Promise<JsonObject | undefined | void> | JsonObject | undefined | void;

/** What `work` takes. */
export interface WorkOptions {
  /** Jobs run at once; default 1. */
  concurrency?: number;
  /** Stops the worker: no more leases; the handlers in hand finish, then `work` resolves. */
  signal?: AbortSignal;
  /** How long each lease lasts, extended every third of it; default 30 s. */
  leaseDurationMs?: number;
  /** How long each lease call waits for a job (a long poll); default 20 s. */
  waitMs?: number;
  /**
   * Told about what the worker skips and goes on after: a lost lease, an ack
   * or fail the server refused, a lease call that will be retried. Default
   * `console.warn`.
   */
  onWarning?: (message: string, error?: unknown) => void;
}

const DEFAULT_WAIT_MS = 20_000;
/** Least time between two lease calls that found nothing, whatever the wait. */
const IDLE_MS = 1_000;
/** How soon a lease extension that failed for a transient reason is tried again. */
const RETRY_EXTEND_MS = 1_000;

/** Errors of a lease call after which leasing is tried again, after a pause. */
function transient(error: StrataError): boolean {
  return (
    error instanceof UnavailableError ||
    error instanceof DeadlineExceededError ||
    error instanceof AbortedError ||
    error instanceof ResourceExhaustedError
  );
}

/** Errors of an extension that mean the lease is not the worker's any more. */
function gone(error: StrataError): boolean {
  return error instanceof FailedPreconditionError || error instanceof NotFoundError;
}

/** Run the worker loop of `queue.work`. */
export async function work(
  queue: LeaseCalls,
  policy: RetryPolicy,
  handler: Handler,
  options: WorkOptions,
): Promise<void> {
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError("concurrency must be a positive integer");
  }
  const leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_MS;
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS;
  const warn = options.onWarning ?? ((message, error) => console.warn(message, error ?? ""));
  const stop = options.signal;
  const running = new Set<Promise<void>>();
  let delays = backoffDelays(policy);
  let failure: StrataError | undefined;

  while (!stop?.aborted) {
    if (running.size >= concurrency) {
      await Promise.race(running);
      continue;
    }
    let jobs: Job[];
    try {
      jobs = await queue.lease({
        maxJobs: Math.min(concurrency - running.size, 1000),
        leaseDurationMs,
        waitMs,
        ...(stop === undefined ? {} : { signal: stop }),
      });
    } catch (thrown) {
      if (stop?.aborted) break;
      const error = toStrataError(thrown);
      if (!transient(error)) {
        failure = error;
        break;
      }
      warn(`leasing from queue ${queue.name} failed, trying again: ${error.message}`, error);
      await sleep(delays.next().value, stop).catch(() => undefined);
      continue;
    }
    delays = backoffDelays(policy);
    for (const job of jobs) {
      const task: Promise<void> = run(queue, handler, job, leaseDurationMs, stop, warn).finally(
        () => running.delete(task),
      );
      running.add(task);
    }
    if (jobs.length === 0 && waitMs < IDLE_MS) {
      await sleep(IDLE_MS - waitMs, stop).catch(() => undefined);
    }
  }
  await Promise.all(running);
  if (failure !== undefined) throw failure;
}

/** One job: its handler with a heartbeat, then its ack, fail or release. Never rejects. */
async function run(
  queue: LeaseCalls,
  handler: Handler,
  job: Job,
  leaseDurationMs: number,
  stop: AbortSignal | undefined,
  warn: (message: string, error?: unknown) => void,
): Promise<void> {
  const controller = new AbortController();
  const onStop = (): void => controller.abort(stop?.reason);
  stop?.addEventListener("abort", onStop, { once: true });
  const heartbeat = new Heartbeat(queue, job, leaseDurationMs, (error) => {
    warn(`job ${job.id} of queue ${job.queue}: lease lost (${error.message}); skipping it`, error);
    controller.abort(error);
  });
  let outcome: { result: unknown } | { error: unknown };
  try {
    outcome = { result: await handler(job, { signal: controller.signal }) };
  } catch (error) {
    outcome = { error };
  } finally {
    stop?.removeEventListener("abort", onStop);
  }
  if (!(await heartbeat.stop())) return; // lost while it ran: not ours to settle
  try {
    if ("error" in outcome) {
      if (stop?.aborted) await queue.release(job);
      else await queue.fail(job, outcome.error);
      return;
    }
    const result = outcome.result;
    if (result !== undefined && (result === null || typeof result !== "object" || Array.isArray(result))) {
      await queue.fail(job, new TypeError("the handler resolved to something other than a JSON object"));
      return;
    }
    try {
      await queue.ack(job, result === undefined ? {} : { result: result as JsonObject });
    } catch (thrown) {
      const error = toStrataError(thrown);
      if (!(error instanceof InvalidArgumentError || error instanceof ResourceExhaustedError)) {
        throw error;
      }
      await queue.fail(job, `the job's result was refused: ${errorText(error)}`);
    }
  } catch (thrown) {
    const error = toStrataError(thrown);
    warn(`job ${job.id}: could not settle it (${error.message}); it runs again once its lease expires`, error);
  }
}

/** Extends one job's lease every third of its duration until stopped. */
class Heartbeat {
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private stopped = false;
  private lost = false;
  private readonly intervalMs: number;

  constructor(
    private readonly queue: LeaseCalls,
    private readonly job: Job,
    private readonly leaseDurationMs: number,
    private readonly onLost: (error: StrataError) => void,
  ) {
    this.intervalMs = leaseDurationMs / 3;
    this.schedule(this.intervalMs);
  }

  /** Stop extending; resolves to false when the lease was lost meanwhile. */
  async stop(): Promise<boolean> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.inFlight;
    return !this.lost;
  }

  private schedule(delayMs: number): void {
    if (this.stopped || this.lost) return;
    this.timer = setTimeout(() => {
      this.inFlight = this.beat();
    }, delayMs);
  }

  private async beat(): Promise<void> {
    const sent = performance.now();
    try {
      await this.queue.extend(this.job, { leaseDurationMs: this.leaseDurationMs });
    } catch (thrown) {
      const error = toStrataError(thrown);
      if (this.stopped) return;
      if (gone(error)) {
        this.lost = true;
        this.onLost(error);
        return;
      }
      this.schedule(Math.min(this.intervalMs, RETRY_EXTEND_MS) - (performance.now() - sent));
      return;
    }
    this.schedule(this.intervalMs - (performance.now() - sent));
  }
}
