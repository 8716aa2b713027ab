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
 * hiding the success), `cancel` or `retry`.
 */
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import {
  type JsonObject,
  fromDuration,
  fromTimestamp,
  optionalString,
  requiredDate,
  toDuration,
  toStruct,
  toTimestamp,
} from "./convert.js";
import { type StrataError, fromOutcome } from "./errors.js";
import { create } from "@bufbuild/protobuf";
import {
  EnqueueRequestSchema,
  type Job as JobMessage,
  JobState,
  type QueueStats as QueueStatsMessage,
  QueueService,
} from "./gen/strata/v1/queue_pb.js";
import { Subscription, type SubscribeOptions } from "./subscription.js";
import { type Handler, type WorkOptions, work } from "./worker.js";

/**
 * Where a job is in its life: `available` (runnable now), `scheduled` (waiting
 * for its runTime), `leased` (held by a worker), `completed` (acked), `dead`
 * (failed maxAttempts times) or `cancelled`; `unspecified` stands for a state
 * this client does not know (a newer server's).
 */
export type JobStateName =
  | "available"
  | "scheduled"
  | "leased"
  | "completed"
  | "dead"
  | "cancelled"
  | "unspecified";

const STATES: { [state in JobState]: JobStateName } = {
  [JobState.UNSPECIFIED]: "unspecified",
  [JobState.AVAILABLE]: "available",
  [JobState.SCHEDULED]: "scheduled",
  [JobState.LEASED]: "leased",
  [JobState.COMPLETED]: "completed",
  [JobState.DEAD]: "dead",
  [JobState.CANCELLED]: "cancelled",
};

/** The name of a `strata.v1.JobState` value. */
export function jobStateName(state: JobState): JobStateName {
  return STATES[state] ?? "unspecified";
}

const STATE_VALUES = new Map(
  Object.entries(STATES).map(([value, name]) => [name, Number(value) as JobState]),
);

/** A unit of work in a queue. */
export interface Job {
  /** The tenant or workspace the job belongs to. */
  namespace: string;
  /** The queue the job belongs to. */
  queue: string;
  /** Server-assigned id, unique within the namespace. */
  id: string;
  /** Where the job is in its life. */
  state: JobStateName;
  /** What the worker needs to do the work. */
  payload: JsonObject;
  /** Higher runs first. */
  priority: number;
  /** Not leased before this time. */
  runTime: Date;
  /** Attempts started so far (0 before the first lease). */
  attempt: number;
  /** Attempts allowed before the job is dead. */
  maxAttempts: number;
  /** When the job was enqueued. */
  createTime: Date;
  /** When the job last changed. */
  updateTime: Date;
  /** The current lease's token: set on leased jobs; `ack`, `fail` and `extend` need it. */
  leaseToken?: string;
  /** When the current lease ends unless extended. */
  leaseExpireTime?: Date;
  /** The error of the last failed attempt. */
  lastError?: string;
  /** What the worker returned on ack. */
  result?: JsonObject;
  /** The deduplication key, if any. */
  uniqueKey?: string;
  /** When the job completed, died or was cancelled. */
  finishTime?: Date;
  /** First retry delay in milliseconds (later ones double it); absent: the server's default. */
  retryBackoffMs?: number;
}

/** The job a `strata.v1.Job` message describes. */
export function jobFromProto(message: JobMessage): Job {
  const job: Job = {
    namespace: message.namespace,
    queue: message.queue,
    id: message.id,
    state: jobStateName(message.state),
    payload: message.payload ?? {},
    priority: message.priority,
    runTime: requiredDate(message.runTime),
    attempt: message.attempt,
    maxAttempts: message.maxAttempts,
    createTime: requiredDate(message.createTime),
    updateTime: requiredDate(message.updateTime),
  };
  const optional: Partial<Job> = {
    leaseToken: optionalString(message.leaseToken),
    leaseExpireTime: fromTimestamp(message.leaseExpireTime),
    lastError: optionalString(message.lastError),
    result: message.result,
    uniqueKey: optionalString(message.uniqueKey),
    finishTime: fromTimestamp(message.finishTime),
    retryBackoffMs: fromDuration(message.retryBackoff),
  };
  for (const [key, value] of Object.entries(optional)) {
    if (value !== undefined) (job as unknown as Record<string, unknown>)[key] = value;
  }
  return job;
}

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

/** A leased job, or just what acking it takes. */
export type LeasedJob = Pick<Job, "id" | "leaseToken"> & { namespace?: string };

/** A job, or its id. */
export type JobRef = Pick<Job, "id"> | string;

/** What `lease` takes. */
export interface LeaseOptions extends CallOptions {
  /** Most jobs to lease, 1..1000; default 1. */
  maxJobs?: number;
  /** How long each lease lasts unless extended, 1 s to 12 h; default 30 s. */
  leaseDurationMs?: number;
  /** How long to wait for a job when none is runnable (a long poll, at most 60 s); default 0. */
  waitMs?: number;
}

/** Default lease duration, in milliseconds. */
export const DEFAULT_LEASE_MS = 30_000;

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

/** What `fail` records for `error`: a string as it is, an Error as "Name: message". */
export function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** One queue in one namespace. */
export class Queue {
  constructor(
    private readonly connection: Connection,
    /** The queue's name. */
    readonly name: string,
    /** The queue's namespace. */
    readonly namespace: string,
  ) {}

  private get service() {
    return this.connection.client(QueueService);
  }

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
   * Lease up to `maxJobs` runnable jobs, each with its `leaseToken`: highest
   * priority first, then earliest runTime, then oldest. Waits up to `waitMs` for
   * one when none is runnable; returns none for a paused queue.
   */
  async lease(options: LeaseOptions = {}): Promise<Job[]> {
    const waitMs = options.waitMs ?? 0;
    const request = {
      namespace: this.namespace,
      queue: this.name,
      maxJobs: options.maxJobs ?? 1,
      leaseDuration: toDuration(options.leaseDurationMs ?? DEFAULT_LEASE_MS),
      wait: toDuration(waitMs),
    };
    const response = await this.connection.unary(
      (call) => this.service.leaseJobs(request, call),
      { idempotent: false, waitMs },
      options,
    );
    return response.jobs.map(jobFromProto);
  }

  /**
   * Complete a leased job, keeping `result` with it. Throws LeaseLostError when
   * its token is not the job's current lease, NotFoundError for an unknown job.
   */
  async ack(job: LeasedJob, options: CallOptions & { result?: JsonObject } = {}): Promise<Job> {
    const request = {
      namespace: job.namespace ?? this.namespace,
      id: job.id,
      leaseToken: job.leaseToken ?? "",
      result: options.result === undefined ? undefined : toStruct(options.result, "result"),
    };
    const message = await this.connection.unary(
      (call) => this.service.ackJob(request, call),
      { idempotent: false },
      options,
    );
    return jobFromProto(message);
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

  /**
   * Record a failed attempt: the job is retried after its backoff (or
   * `retryDelayMs`), or is dead after maxAttempts. `error` is kept as its
   * `lastError` (an Error as "Name: message"). Throws LeaseLostError, NotFoundError.
   */
  async fail(
    job: LeasedJob,
    error: unknown,
    options: CallOptions & { retryDelayMs?: number } = {},
  ): Promise<Job> {
    const request = {
      namespace: job.namespace ?? this.namespace,
      id: job.id,
      leaseToken: job.leaseToken ?? "",
      error: errorText(error),
      retryDelay: toDuration(options.retryDelayMs, "retryDelayMs"),
    };
    const message = await this.connection.unary(
      (call) => this.service.failJob(request, call),
      { idempotent: false },
      options,
    );
    return jobFromProto(message);
  }

  /**
   * Give a leased job back unworked: runnable again at once, and the attempt its
   * lease started does not count. Throws LeaseLostError, NotFoundError.
   */
  async release(job: LeasedJob, options: CallOptions = {}): Promise<Job> {
    const request = {
      namespace: job.namespace ?? this.namespace,
      id: job.id,
      leaseToken: job.leaseToken ?? "",
      release: true,
    };
    const message = await this.connection.unary(
      (call) => this.service.failJob(request, call),
      { idempotent: false },
      options,
    );
    return jobFromProto(message);
  }

  /** Extend a lease to now + `leaseDurationMs` (default 30 s). Throws LeaseLostError. */
  async extend(
    job: LeasedJob,
    options: CallOptions & { leaseDurationMs?: number } = {},
  ): Promise<Job> {
    const request = {
      namespace: job.namespace ?? this.namespace,
      id: job.id,
      leaseToken: job.leaseToken ?? "",
      leaseDuration: toDuration(options.leaseDurationMs ?? DEFAULT_LEASE_MS),
    };
    const message = await this.connection.unary(
      (call) => this.service.extendLease(request, call),
      { idempotent: false },
      options,
    );
    return jobFromProto(message);
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
    const state = options.state === undefined ? JobState.UNSPECIFIED : STATE_VALUES.get(options.state);
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
