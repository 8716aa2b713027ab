/**
 * The job queue (QueueService): `client.queue("emails")`.
 *
 *     const emails = client.queue("emails");
 *     await emails.enqueue({ to: "a@example.com" });
 *     await emails.work(async (job) => { await send(job.payload); }, { concurrency: 4, signal });
 *
 * Which calls are retried after UNAVAILABLE (as in the Python client): the reads
 * (`get`, `list`, `stats`) and `pause` / `resume` always; `enqueue` and
 * `batchEnqueue` only with a `requestId`. Never `lease` (a lost response would
 * leave jobs leased to nobody until the lease expires), `ack`, `fail`,
 * `release`, `extend` (a repeat after an unheard success fails with LEASE_LOST,
 * hiding the success), `cancel` or `retry`. The calls on leases, which the
 * worker and subscriptions make too, are in jobs.ts (`LeaseCalls`).
 */
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import { type JsonObject, fromDuration, toDuration, toStruct, toTimestamp } from "./convert.js";
import { type StrataError, fromOutcome } from "./errors.js";
import { create } from "@bufbuild/protobuf";
import {
  EnqueueRequestSchema,
  JobState,
  QueueService,
  type QueueStats as QueueStatsMessage,
} from "./gen/strata/v1/queue_pb.js";
import {
  type Job,
  type JobStateName,
  LeaseCalls,
  type LeasedJob,
  jobFromProto,
  jobStateValue,
} from "./jobs.js";
import { Subscription, type SubscribeOptions } from "./subscription.js";
import { type Handler, type WorkOptions, work } from "./worker.js";

/** A queue's state and the number of its jobs in each state. */
export interface QueueStats {
  namespace: string;
  queue: string;
  /** Whether leasing is stopped (`pause`). */
  paused: boolean;
  available: number;
  scheduled: number;
  leased: number;
  completed: number;
  dead: number;
  cancelled: number;
  /** How long the oldest runnable job has waited, in milliseconds; 0 when none is. */
  oldestAvailableAgeMs: number;
  /** Leases that expired (and were reclaimed) within the last `expiryWindowMs`. */
  expiredLeases: number;
  /** The window `expiredLeases` counts over, in milliseconds. */
  expiryWindowMs: number;
}

function statsFromProto(message: QueueStatsMessage): QueueStats {
  return {
    namespace: message.namespace,
    queue: message.queue,
    paused: message.paused,
    available: Number(message.available),
    scheduled: Number(message.scheduled),
    leased: Number(message.leased),
    completed: Number(message.completed),
    dead: Number(message.dead),
    cancelled: Number(message.cancelled),
    oldestAvailableAgeMs: fromDuration(message.oldestAvailableAge) ?? 0,
    expiredLeases: Number(message.expiredLeases),
    expiryWindowMs: fromDuration(message.expiryWindow) ?? 0,
  };
}

/**
 * Iterate over the queues of `namespace` by name (`ListQueues`): every queue that
 * holds a job in any state or is paused, each with its stats. A read: retried
 * after UNAVAILABLE. `StrataClient.listQueues` is the way to call it.
 */
export function listQueues(
  connection: Connection,
  namespace: string,
  options: CallOptions & { pageSize?: number } = {},
): AsyncGenerator<QueueStats, void, undefined> {
  const service = connection.client(QueueService);
  return paginate(async (pageToken) => {
    const request = { namespace, pageSize: options.pageSize ?? 0, pageToken };
    const response = await connection.unary(
      (call) => service.listQueues(request, call),
      { idempotent: true },
      options,
    );
    return { items: response.queues.map(statsFromProto), nextPageToken: response.nextPageToken };
  });
}

/** The options of one job: what `enqueue` takes besides the payload. */
export interface JobOptions {
  /** Higher runs first; default 0. */
  priority?: number;
  /** Not leased before this time; exclusive with `delayMs`. */
  runTime?: Date;
  /** Not leased before now + this many milliseconds; exclusive with `runTime`. */
  delayMs?: number;
  /** Attempts allowed, 1..1000; absent: the server's 10. */
  maxAttempts?: number;
  /** While an unfinished job of the queue has this key, that job is returned instead. */
  uniqueKey?: string;
  /** First retry delay in milliseconds, doubled for each later retry; absent: 1 s. */
  retryBackoffMs?: number;
}

/** What `enqueue` takes. */
export interface EnqueueOptions extends JobOptions, CallOptions {
  /**
   * An idempotency key: a retry returns the first result and adds nothing, so
   * the client retries the enqueue after UNAVAILABLE; without one it never does.
   */
  requestId?: string;
}

/** One job of `batchEnqueue`: its payload and options. */
export interface EnqueueSpec extends JobOptions {
  payload: JsonObject;
}

/** A job, or its id. */
export type JobRef = Pick<Job, "id"> | string;

/** The fields of an EnqueueRequest (or a Commit's enqueue write) for a payload and options. */
export function jobFields(payload: JsonObject, options: JobOptions) {
  return {
    payload: toStruct(payload, "payload"),
    priority: options.priority ?? 0,
    runTime: toTimestamp(options.runTime, "runTime"),
    delay: toDuration(options.delayMs, "delayMs"),
    maxAttempts: options.maxAttempts ?? 0,
    uniqueKey: options.uniqueKey ?? "",
    retryBackoff: toDuration(options.retryBackoffMs, "retryBackoffMs"),
  };
}

/** One queue in one namespace. */
export class Queue extends LeaseCalls {
  /**
   * Add a job holding `payload` and return it. Throws InvalidArgumentError,
   * ResourceExhaustedError (payload too large).
   */
  async enqueue(payload: JsonObject, options: EnqueueOptions = {}): Promise<Job> {
    const request = {
      namespace: this.namespace,
      queue: this.name,
      ...jobFields(payload, options),
      requestId: options.requestId ?? "",
    };
    const message = await this.connection.unary(
      (call) => this.service.enqueue(request, call),
      { idempotent: Boolean(options.requestId) },
      options,
    );
    return jobFromProto(message);
  }

  /**
   * Add up to 1000 jobs in one transaction, all or none, and return them in
   * order: each a payload with any options of `enqueue`, e.g.
   * `{ payload: { to: "a@example.com" }, priority: 5 }`. A bad job throws with
   * its position in `error.jobIndex`, and nothing is added.
   */
  async batchEnqueue(
    jobs: EnqueueSpec[],
    options: CallOptions & { requestId?: string } = {},
  ): Promise<Job[]> {
    const requests = jobs.map((spec) => create(EnqueueRequestSchema, {
      queue: this.name,
      ...jobFields(spec.payload, spec),
    }));
    const request = {
      namespace: this.namespace,
      jobs: requests,
      requestId: options.requestId ?? "",
    };
    const response = await this.connection.unary(
      (call) => this.service.batchEnqueue(request, call),
      { idempotent: Boolean(options.requestId) },
      options,
    );
    return response.jobs.map(jobFromProto);
  }

  /**
   * Complete many leased jobs in one call (up to 1000), each on its own: returns,
   * in order, each job completed or the error `ack` would have thrown for it.
   */
  async ackMany(
    jobs: (LeasedJob | { job: LeasedJob; result?: JsonObject })[],
    options: CallOptions = {},
  ): Promise<(Job | StrataError)[]> {
    const acks = jobs.map((item) => {
      const { job, result } = "job" in item ? item : { job: item, result: undefined };
      return {
        id: job.id,
        leaseToken: job.leaseToken ?? "",
        result: result === undefined ? undefined : toStruct(result, "result"),
      };
    });
    const request = { namespace: this.namespace, acks };
    const response = await this.connection.unary(
      (call) => this.service.ackJobs(request, call),
      { idempotent: false },
      options,
    );
    return response.results.map((result) =>
      result.job !== undefined
        ? jobFromProto(result.job)
        : fromOutcome(result.errorCode, result.errorReason, result.errorMessage),
    );
  }

  /** Return one job (of any queue of the namespace). Throws NotFoundError. */
  async get(job: JobRef, options: CallOptions = {}): Promise<Job> {
    const request = { namespace: this.namespace, id: jobId(job) };
    const message = await this.connection.unary(
      (call) => this.service.getJob(request, call),
      { idempotent: true },
      options,
    );
    return jobFromProto(message);
  }

  /** Iterate over the queue's jobs, oldest first, optionally only those in one state. */
  list(
    options: CallOptions & { state?: JobStateName; pageSize?: number } = {},
  ): AsyncGenerator<Job, void, undefined> {
    const state = options.state === undefined ? JobState.UNSPECIFIED : jobStateValue(options.state);
    if (state === undefined) throw new TypeError(`unknown job state ${String(options.state)}`);
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        queue: this.name,
        state,
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.listJobs(request, call),
        { idempotent: true },
        options,
      );
      return { items: response.jobs.map(jobFromProto), nextPageToken: response.nextPageToken };
    });
  }

  /**
   * Cancel a job that has not finished (a leased job's next ack then fails with
   * LEASE_LOST). Throws FailedPreconditionError (reason JOB_FINISHED), NotFoundError.
   */
  async cancel(job: JobRef, options: CallOptions = {}): Promise<Job> {
    const request = { namespace: this.namespace, id: jobId(job) };
    const message = await this.connection.unary(
      (call) => this.service.cancelJob(request, call),
      { idempotent: false },
      options,
    );
    return jobFromProto(message);
  }

  /**
   * Make a dead or cancelled job available again with a fresh attempt count.
   * Throws FailedPreconditionError (reason JOB_NOT_RETRYABLE or
   * UNIQUE_KEY_IN_USE), NotFoundError.
   */
  async retry(job: JobRef, options: CallOptions = {}): Promise<Job> {
    const request = { namespace: this.namespace, id: jobId(job) };
    const message = await this.connection.unary(
      (call) => this.service.retryJob(request, call),
      { idempotent: false },
      options,
    );
    return jobFromProto(message);
  }

  /** Counts by state, the oldest available job's age, and recent lease expiries. */
  async stats(options: CallOptions = {}): Promise<QueueStats> {
    const request = { namespace: this.namespace, queue: this.name };
    const message = await this.connection.unary(
      (call) => this.service.getQueueStats(request, call),
      { idempotent: true },
      options,
    );
    return statsFromProto(message);
  }

  /** Stop the queue from leasing jobs (enqueues still succeed); returns its stats. */
  async pause(options: CallOptions = {}): Promise<QueueStats> {
    const request = { namespace: this.namespace, queue: this.name };
    const message = await this.connection.unary(
      (call) => this.service.pauseQueue(request, call),
      { idempotent: true },
      options,
    );
    return statsFromProto(message);
  }

  /** Let a paused queue lease jobs again; returns its stats. */
  async resume(options: CallOptions = {}): Promise<QueueStats> {
    const request = { namespace: this.namespace, queue: this.name };
    const message = await this.connection.unary(
      (call) => this.service.resumeQueue(request, call),
      { idempotent: true },
      options,
    );
    return statsFromProto(message);
  }

  /**
   * Run `handler` on the queue's jobs, `concurrency` at a time, until `signal`
   * aborts; then let the handlers in hand finish and return. See
   * {@link WorkOptions} and the client README for what happens to each job.
   */
  work(handler: Handler, options: WorkOptions = {}): Promise<void> {
    return work(this, this.connection.retry, handler, options);
  }

  /**
   * Open a SubscribeJobs stream: jobs are pushed as they become runnable, never
   * more than `maxInFlight` unsettled. Iterate over it and settle each job with
   * its `ack`, `fail` or `release`; leaving the loop (or `close()`) releases the
   * jobs delivered and not settled.
   */
  subscribe(options: SubscribeOptions = {}): Subscription {
    return new Subscription(this, this.connection, options);
  }
}

function jobId(job: JobRef): string {
  return typeof job === "string" ? job : job.id;
}
