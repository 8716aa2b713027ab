/**
 * Typed errors for failed calls, read from the gRPC status the server sends.
 *
 * The server attaches a `google.rpc.Status` to every error, in the
 * `grpc-status-details-bin` trailer: always an `ErrorInfo{reason, domain:
 * "strata.v1", metadata}`, a `BadRequest` with field violations for bad input,
 * and possibly `RetryInfo` / `QuotaFailure`. Connect decodes the trailer into
 * `ConnectError.details`; {@link toStrataError} turns that into the matching
 * {@link StrataError} subclass, chosen by `ErrorInfo.reason` where that is more
 * precise than the status code (`VERSION_CONFLICT`, `LEASE_LOST`, ...) and by the
 * code otherwise. Every error a client method throws goes through it: one path,
 * as in the Python client's `strata.errors`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  PreconditionFailureSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";

/** gRPC status code names, as the protos and the server's docs spell them. */
export type StatusCode =
  | "OK"
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS"
  | "UNAUTHENTICATED";

const CODE_NAMES: readonly StatusCode[] = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
];

/** One `BadRequest` field violation: which request field, and what is wrong with it. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * One `PreconditionFailure` violation: what stands in the way, e.g. a refused
 * record delete's child (`type` "transcript" or "artifact", `subject` its id).
 */
export interface PreconditionViolation {
  type: string;
  subject: string;
  description: string;
}

/** One `QuotaFailure` violation: whose quota, and how it was exceeded. */
export interface QuotaViolation {
  subject: string;
  description: string;
}

/** What a {@link StrataError} is made of; every field is optional. */
export interface StrataErrorInit {
  code?: StatusCode;
  reason?: string;
  metadata?: Record<string, string>;
  fieldViolations?: FieldViolation[];
  quotaViolations?: QuotaViolation[];
  preconditionViolations?: PreconditionViolation[];
  retryDelayMs?: number;
  cause?: unknown;
}

/**
 * The Strata server did not complete the request. The root of every error a
 * client method throws; `code` is the gRPC status, `reason` and `metadata` come
 * from the status's `ErrorInfo`.
 */
export class StrataError extends Error {
  /** The status code a subclass stands for; the root's is UNKNOWN. */
  static readonly statusCode: StatusCode = "UNKNOWN";

  /** The gRPC status code of the failed call, e.g. "NOT_FOUND". */
  readonly code: StatusCode;
  /** `ErrorInfo.reason`, e.g. "NOT_FOUND" or "VERSION_CONFLICT"; empty when absent. */
  readonly reason: string;
  /** `ErrorInfo.metadata`, e.g. `current_version` or, for Commit, `write_index`. */
  readonly metadata: Record<string, string>;
  /** `BadRequest` field violations; empty unless the request was malformed. */
  readonly fieldViolations: FieldViolation[];
  /** `QuotaFailure` violations; empty unless a quota was exceeded. */
  readonly quotaViolations: QuotaViolation[];
  /** `PreconditionFailure` violations; empty unless the server listed what is in the way. */
  readonly preconditionViolations: PreconditionViolation[];
  /** `RetryInfo.retry_delay` in milliseconds, when the server suggested one. */
  readonly retryDelayMs: number | undefined;

  constructor(message?: string, init: StrataErrorInit = {}) {
    const statics = new.target as unknown as { statusCode: StatusCode };
    super(message || init.code || statics.statusCode, { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code ?? statics.statusCode;
    this.reason = init.reason ?? "";
    this.metadata = { ...(init.metadata ?? {}) };
    this.fieldViolations = [...(init.fieldViolations ?? [])];
    this.quotaViolations = [...(init.quotaViolations ?? [])];
    this.preconditionViolations = [...(init.preconditionViolations ?? [])];
    this.retryDelayMs = init.retryDelayMs;
  }

  /** For a failed Commit, the position of the write that failed. */
  get writeIndex(): number | undefined {
    return intOrUndefined(this.metadata["write_index"]);
  }

  /** For a failed BatchEnqueue, the position of the offending job. */
  get jobIndex(): number | undefined {
    return intOrUndefined(this.metadata["job_index"]);
  }

  /** For a failed AppendEntries, the position of the offending entry. */
  get entryIndex(): number | undefined {
    return intOrUndefined(this.metadata["entry_index"]);
  }
}

/**
 * The request is malformed: e.g. a bad collection, id, filter, mask or page
 * token. `fieldViolations` names the bad fields; sent again unchanged, the
 * request fails the same way.
 */
export class InvalidArgumentError extends StrataError {
  static override readonly statusCode: StatusCode = "INVALID_ARGUMENT";
}

/** The requested entity does not exist or has expired. */
export class NotFoundError extends StrataError {
  static override readonly statusCode: StatusCode = "NOT_FOUND";
}

/**
 * An entity with that id already exists. A create retried with the same
 * `requestId` does not throw this: it returns the first create's result.
 */
export class AlreadyExistsError extends StrataError {
  static override readonly statusCode: StatusCode = "ALREADY_EXISTS";
}

/**
 * The call was aborted and wrote nothing. With reason CONCURRENT_MODIFICATION it
 * lost a race with another transaction; the client retries those by itself, so
 * seeing one means its attempts ran out.
 */
export class AbortedError extends StrataError {
  static override readonly statusCode: StatusCode = "ABORTED";
}

/**
 * The entity changed since the version the caller expected (reason
 * VERSION_CONFLICT). Read it again (it is now at `currentVersion`), reapply the
 * change and retry.
 */
export class VersionConflictError extends AbortedError {
  /** The entity's version at the time of the conflict (0 when not reported). */
  get currentVersion(): number {
    return intOrUndefined(this.metadata["current_version"]) ?? 0;
  }
}

/** The system is not in a state that allows this request. */
export class FailedPreconditionError extends StrataError {
  static override readonly statusCode: StatusCode = "FAILED_PRECONDITION";
}

/**
 * The lease token is not the job's current lease (reason LEASE_LOST): the lease
 * expired and the job went back to the queue (maybe to another worker), or the
 * job was completed, failed or cancelled meanwhile. The caller no longer holds
 * the job and cannot ack, fail or extend it.
 */
export class LeaseLostError extends FailedPreconditionError {}

/**
 * An append's `expectedNextSeq` is stale (reason SEQ_MISMATCH): someone appended
 * in between. The transcript's actual next seq is `nextSeq`.
 */
export class SeqMismatchError extends FailedPreconditionError {
  /** The transcript's next seq when the append was refused. */
  get nextSeq(): number | undefined {
    return intOrUndefined(this.metadata["next_seq"]);
  }
}

/** The transcript is sealed and takes no more entries (reason TRANSCRIPT_SEALED). */
export class TranscriptSealedError extends FailedPreconditionError {}

/**
 * A watch's cursor lies before changes the server's audit log retention has
 * purged (reason CURSOR_EXPIRED), so resuming from it would skip them: watch
 * from now, then read the collection again. A watch throws it at once, never
 * reconnecting with the same cursor.
 */
export class CursorExpiredError extends FailedPreconditionError {
  /** The oldest cursor the server still resumes from. */
  get horizon(): string {
    return this.metadata["horizon"] ?? "";
  }

  /** When the newest purged change was made (RFC 3339). */
  get purgedThrough(): string {
    return this.metadata["purged_through"] ?? "";
  }
}

/**
 * A record delete was refused because transcripts or artifacts name the record
 * as their parent (reason HAS_CHILDREN): delete them first, or delete with
 * `cascade`. Nothing was deleted.
 */
export class HasChildrenError extends FailedPreconditionError {
  /** How many children the record has (all of them, not only those listed). */
  get childCount(): number | undefined {
    return intOrUndefined(this.metadata["children"]);
  }

  /** The first children (up to 100), each a transcript or an artifact by id. */
  get children(): { kind: string; id: string }[] {
    return this.preconditionViolations.map((v) => ({ kind: v.type, id: v.subject }));
  }
}

/** The request reads past the end of the data (a `fromSeq` or an offset). */
export class OutOfRangeError extends StrataError {
  static override readonly statusCode: StatusCode = "OUT_OF_RANGE";
}

/**
 * Stored data is missing or damaged (an artifact's bytes, or a download that
 * does not hash to the artifact's sha256).
 */
export class DataLossError extends StrataError {
  static override readonly statusCode: StatusCode = "DATA_LOSS";
}

/**
 * The request carries more data than the server accepts (reason TOO_LARGE), a
 * quota ran out (`quotaViolations`), or another limit on the server was hit.
 */
export class ResourceExhaustedError extends StrataError {
  static override readonly statusCode: StatusCode = "RESOURCE_EXHAUSTED";
}

/**
 * The server, or a backend it depends on (reason BACKEND_UNAVAILABLE), cannot be
 * reached. Reads and writes with a requestId were retried already; a write
 * without one may or may not have been applied.
 */
export class UnavailableError extends StrataError {
  static override readonly statusCode: StatusCode = "UNAVAILABLE";
}

/** The call did not finish within its deadline; a write may or may not have been applied. */
export class DeadlineExceededError extends StrataError {
  static override readonly statusCode: StatusCode = "DEADLINE_EXCEEDED";
}

/** The call was cancelled, by its AbortSignal or by the server shutting down. */
export class CancelledError extends StrataError {
  static override readonly statusCode: StatusCode = "CANCELLED";
}

/** The caller may not do this (its token's role or namespaces). */
export class PermissionDeniedError extends StrataError {
  static override readonly statusCode: StatusCode = "PERMISSION_DENIED";
}

/** The caller's credentials are missing or invalid. */
export class UnauthenticatedError extends StrataError {
  static override readonly statusCode: StatusCode = "UNAUTHENTICATED";
}

/** The server does not offer this call (an older server, or not configured). */
export class UnimplementedError extends StrataError {
  static override readonly statusCode: StatusCode = "UNIMPLEMENTED";
}

type ErrorClass = new (message?: string, init?: StrataErrorInit) => StrataError;

const BY_CODE: Partial<Record<StatusCode, ErrorClass>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: AlreadyExistsError,
  ABORTED: AbortedError,
  FAILED_PRECONDITION: FailedPreconditionError,
  OUT_OF_RANGE: OutOfRangeError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  DATA_LOSS: DataLossError,
  UNAVAILABLE: UnavailableError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  CANCELLED: CancelledError,
  PERMISSION_DENIED: PermissionDeniedError,
  UNAUTHENTICATED: UnauthenticatedError,
  UNIMPLEMENTED: UnimplementedError,
};

/** Reasons more precise than their code, each with the code it comes with. */
const BY_REASON: Record<string, [StatusCode, ErrorClass]> = {
  VERSION_CONFLICT: ["ABORTED", VersionConflictError],
  LEASE_LOST: ["FAILED_PRECONDITION", LeaseLostError],
  SEQ_MISMATCH: ["FAILED_PRECONDITION", SeqMismatchError],
  TRANSCRIPT_SEALED: ["FAILED_PRECONDITION", TranscriptSealedError],
  CURSOR_EXPIRED: ["FAILED_PRECONDITION", CursorExpiredError],
  HAS_CHILDREN: ["FAILED_PRECONDITION", HasChildrenError],
};

/** The class of an error of this code and reason. */
function errorClass(code: StatusCode, reason: string): ErrorClass {
  const byReason = BY_REASON[reason];
  if (byReason !== undefined && byReason[0] === code) return byReason[1];
  return BY_CODE[code] ?? StrataError;
}

/** The name of a Connect status code, e.g. "NOT_FOUND". */
export function statusCodeName(code: Code): StatusCode {
  return CODE_NAMES[code] ?? "UNKNOWN";
}

/**
 * The typed error for anything a call threw: a {@link StrataError} as it is,
 * a `ConnectError` decoded with its details, an AbortSignal's abort as a
 * {@link CancelledError}, and anything else as a plain StrataError (code UNKNOWN)
 * with the original as its `cause`.
 */
export function toStrataError(error: unknown): StrataError {
  if (error instanceof StrataError) return error;
  if (!(error instanceof ConnectError)) {
    if (error instanceof Error && error.name === "AbortError") {
      return new CancelledError(error.message, { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new StrataError(message, { cause: error });
  }
  const [info] = safeDetails(error, ErrorInfoSchema);
  const code = info === undefined && lostConnection(error) ? "UNAVAILABLE" : statusCodeName(error.code);
  const init: StrataErrorInit = { code, cause: error };
  if (info !== undefined) {
    init.reason = info.reason;
    init.metadata = { ...info.metadata };
  }
  init.fieldViolations = safeDetails(error, BadRequestSchema).flatMap((bad) =>
    bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
  );
  init.quotaViolations = safeDetails(error, QuotaFailureSchema).flatMap((quota) =>
    quota.violations.map((v) => ({ subject: v.subject, description: v.description })),
  );
  init.preconditionViolations = safeDetails(error, PreconditionFailureSchema).flatMap((failure) =>
    failure.violations.map((v) => ({ type: v.type, subject: v.subject, description: v.description })),
  );
  const [retry] = safeDetails(error, RetryInfoSchema);
  if (retry?.retryDelay !== undefined) init.retryDelayMs = durationMs(retry.retryDelay);
  const ErrorType = errorClass(code, init.reason ?? "");
  return new ErrorType(error.rawMessage || code, init);
}

/**
 * The typed error of one failed item of a batch call (AckJobs), which names its
 * status code and ErrorInfo reason instead of failing the whole call.
 */
export function fromOutcome(codeName: string, reason: string, message: string): StrataError {
  const code = (CODE_NAMES as readonly string[]).includes(codeName)
    ? (codeName as StatusCode)
    : "UNKNOWN";
  const ErrorType = errorClass(code, reason);
  return new ErrorType(message || code, { code, reason });
}

/**
 * Node error codes of a connection that failed or broke: refused, reset, timed
 * out, its HTTP/2 session or stream torn down, or its TLS handshake refused.
 * Connect reports some of these as ABORTED or INTERNAL; like gRPC's own
 * clients, Strata's calls them UNAVAILABLE (and retries the reads).
 */
const CONNECTION_FAILURES =
  /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|ERR_HTTP2_.*|ERR_SSL_.*|ERR_TLS_.*|.*CERT.*|UNABLE_TO_.*)$/;

/** Whether a ConnectError was raised by the client's side of a failed connection. */
function lostConnection(error: ConnectError): boolean {
  const byServer = error.code !== Code.Aborted && error.code !== Code.Internal &&
    error.code !== Code.Unknown && error.code !== Code.Unavailable;
  if (byServer) return false;
  const seen = new Set<unknown>();
  for (let cause: unknown = error.cause; cause instanceof Error && !seen.has(cause); ) {
    seen.add(cause);
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && CONNECTION_FAILURES.test(code)) return true;
    cause = cause.cause;
  }
  return false;
}

/** The details of a type, or none when they cannot be decoded (a proxy's rewrite). */
function safeDetails<Desc extends DescMessage>(error: ConnectError, desc: Desc): MessageShape<Desc>[] {
  try {
    return error.findDetails(desc);
  } catch {
    return [];
  }
}

function intOrUndefined(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d+$/.test(value)) return undefined;
  return Number(value);
}
