/**
 * A job as the client sees it, and the calls on leases: what a `Queue`, its
 * worker (`worker.ts`) and its subscriptions (`subscription.ts`) all need. Kept
 * apart from queue.ts so that those two import it, and queue.ts imports them,
 * never the other way round.
 *
 * None of these calls is retried after UNAVAILABLE: a lost response to `lease`
 * would leave jobs leased to nobody until the lease expires, and a repeat of
 * `ack`, `fail`, `release` or `extend` after an unheard success fails with
 * LEASE_LOST, hiding the success.
 */
import type { CallOptions, Connection } from "./connection.js";
import {
  type JsonObject,
  fromDuration,
  fromTimestamp,
  optionalString,
  requiredDate,
  toDuration,
  toStruct,
} from "./convert.js";
import { type Job as JobMessage, JobState, QueueService } from "./gen/strata/v1/queue_pb.js";

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

/** The `strata.v1.JobState` value of a state's name; undefined for an unknown name. */
export function jobStateValue(name: JobStateName): JobState | undefined {
  return STATE_VALUES.get(name);
}

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

/** A leased job, or just what acking it takes. */
export type LeasedJob = Pick<Job, "id" | "leaseToken"> & { namespace?: string };

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

/** What `fail` records for `error`: a string as it is, an Error as "Name: message". */
export function errorText(error: unknown): string {
  if (typeof error === "string") return error;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * The calls on one queue's leases: lease jobs, then ack, fail, release or
 * extend each. A `Queue` is these and the rest of QueueService.
 */
export class LeaseCalls {
  constructor(
    protected readonly connection: Connection,
    /** The queue's name. */
    readonly name: string,
    /** The queue's namespace. */
    readonly namespace: string,
  ) {}

  protected get service() {
    return this.connection.client(QueueService);
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
}
