/**
 * SubscribeJobs: jobs pushed to a consumer as they become runnable.
 *
 *     const jobs = client.queue("emails").subscribe({ maxInFlight: 8 });
 *     for await (const job of jobs) {
 *       await send(job.payload);
 *       await jobs.ack(job);
 *     }
 *
 * The server never has more than `maxInFlight` of the stream's jobs unsettled, so
 * a consumer that stops acking stops receiving. Leaving the loop (or `close()`,
 * or aborting `signal`) is the clean close: the stream is cancelled and every job
 * it delivered that was not acked, failed or released through the subscription
 * is released at once. A consumer that dies instead leaves its jobs to come back
 * when their leases expire. Leases are not extended by the stream: settle each
 * job within `leaseDurationMs`, or `queue.extend(job)`.
 */
import type { Connection } from "./connection.js";
import { toDuration } from "./convert.js";
import type { JsonObject } from "./convert.js";
import { LeaseLostError, NotFoundError } from "./errors.js";
import { QueueService } from "./gen/strata/v1/queue_pb.js";
import { DEFAULT_LEASE_MS, type Job, type LeaseCalls, jobFromProto } from "./jobs.js";

/** What `subscribe` takes. */
export interface SubscribeOptions {
  /** Most jobs delivered and not yet settled, 1..1000; default 1. */
  maxInFlight?: number;
  /** How long each lease lasts, 1 s to 12 h; default 30 s. */
  leaseDurationMs?: number;
  /** Closes the subscription (as `close()`) when it aborts. */
  signal?: AbortSignal;
}

/** The jobs of one SubscribeJobs stream; iterate over it once. */
export class Subscription implements AsyncIterable<Job> {
  private readonly unsettled = new Map<string, Job>();
  private readonly controller = new AbortController();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly queue: LeaseCalls,
    private readonly connection: Connection,
    private readonly options: SubscribeOptions,
  ) {
    const maxInFlight = options.maxInFlight ?? 1;
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError("maxInFlight must be a positive integer");
    }
    options.signal?.addEventListener("abort", () => void this.close(), { once: true });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Job, void, undefined> {
    const request = {
      namespace: this.queue.namespace,
      queue: this.queue.name,
      maxInFlight: this.options.maxInFlight ?? 1,
      leaseDuration: toDuration(this.options.leaseDurationMs ?? DEFAULT_LEASE_MS),
    };
    const service = this.connection.client(QueueService);
    try {
      for await (const message of this.connection.stream(
        (call) => service.subscribeJobs(request, call),
        { signal: this.controller.signal },
      )) {
        const job = jobFromProto(message);
        this.unsettled.set(job.id, job);
        yield job;
      }
    } catch (error) {
      if (!this.controller.signal.aborted) throw error;
    } finally {
      await this.close();
    }
  }

  /** Complete `job` (`queue.ack`) and stop tracking it. */
  async ack(job: Job, result?: JsonObject): Promise<Job> {
    const done = await this.queue.ack(job, result === undefined ? {} : { result });
    this.unsettled.delete(job.id);
    return done;
  }

  /** Fail `job`'s attempt (`queue.fail`) and stop tracking it. */
  async fail(job: Job, error: unknown, retryDelayMs?: number): Promise<Job> {
    const options = retryDelayMs === undefined ? {} : { retryDelayMs };
    const failed = await this.queue.fail(job, error, options);
    this.unsettled.delete(job.id);
    return failed;
  }

  /** Give `job` back unworked (`queue.release`) and stop tracking it. */
  async release(job: Job): Promise<Job> {
    const released = await this.queue.release(job);
    this.unsettled.delete(job.id);
    return released;
  }

  /**
   * Cancel the stream, then release every delivered job not yet settled through
   * this subscription (one the server already settled is skipped).
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.controller.abort();
      const jobs = [...this.unsettled.values()];
      this.unsettled.clear();
      await Promise.all(
        jobs.map((job) =>
          this.queue.release(job).catch((error: unknown) => {
            // Acked elsewhere, expired or cancelled: nothing to give back.
            if (!(error instanceof LeaseLostError || error instanceof NotFoundError)) throw error;
          }),
        ),
      );
    })();
    return this.closing;
  }
}
