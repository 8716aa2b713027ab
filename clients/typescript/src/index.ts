/**
 * @strata/client: the Node client of Strata, a gRPC data-access server.
 *
 *     import { StrataClient, NotFoundError, VersionConflictError } from "@strata/client";
 *
 *     const client = new StrataClient({ target: "127.0.0.1:50051", namespace: "demo" });
 *     const notes = client.records("notes");
 *     await notes.create({ recordId: "n1", data: { title: "hello" } });
 *
 * The generated messages and service descriptors (protobuf-es) are in
 * `@strata/client/gen/strata/v1/<file>_pb` and `@strata/client/gen/google/rpc/<file>_pb`.
 */
export { StrataClient } from "./client.js";
export type { CallOptions, StrataClientOptions, TlsOptions } from "./connection.js";
export type { RetryPolicy } from "./retry.js";
export { DEFAULT_RETRY } from "./retry.js";
export * from "./errors.js";
export type { JsonObject, JsonValue, Plain } from "./convert.js";
export type {
  ChangeKindName,
  CreateOptions,
  DeleteOptions,
  ListOptions,
  Record,
  RecordChange,
  RecordHit,
  UpdateOptions,
  WatchOptions,
} from "./records.js";
export { RecordWatch, Records } from "./records.js";
export type { Job, JobStateName, LeaseOptions, LeasedJob } from "./jobs.js";
export type { EnqueueOptions, EnqueueSpec, JobOptions, JobRef, QueueStats } from "./queue.js";
export { Queue } from "./queue.js";
export type { Handler, JobContext, WorkOptions } from "./worker.js";
export { Subscription, type SubscribeOptions } from "./subscription.js";
export type { Entry } from "./entry-wire.js";
export type {
  AppendOptions,
  Appended,
  CreateTranscriptOptions,
  EntryInput,
  ReadOptions,
  Transcript,
  TranscriptHit,
  TranscriptTierName,
} from "./transcripts.js";
export { TranscriptReader, Transcripts } from "./transcripts.js";
export type { ResumeOptions } from "./resume.js";
export type {
  Artifact,
  ArtifactStream,
  CompressionName,
  Progress as TransferProgress,
  RangeOptions,
  UploadOptions,
  UploadSource,
} from "./artifacts.js";
export { Artifacts } from "./artifacts.js";
export type { ByteSource, ByteTarget } from "./bytes.js";
export { Cache } from "./cache.js";
export type {
  ArtifactSearchHit,
  EntrySearchHit,
  RecordSearchHit,
  SearchHit,
  SearchKindName,
  SearchOptions,
} from "./search.js";
export type {
  ArchiveSummary,
  AuditEntry,
  CleanupReport,
  CleanupStatus,
  ConflictPolicyName,
  ImportResult,
  Index,
  IntegrityReport,
  NamespaceUsage,
  Progress,
  ProgressOptions,
  ServerInfo,
  Usage,
} from "./admin.js";
export { Admin } from "./admin.js";
export type { RetentionPolicy, RetentionTargetName } from "./retention.js";
export type { CreatedToken, NewToken, Quota, RoleName, Token } from "./access.js";
export { Quotas, Tokens } from "./access.js";
export type { Deleted, Write, WriteResult } from "./writes.js";
export { newRequestId, writes } from "./writes.js";
