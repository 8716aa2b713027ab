/**
 * Retention policies as the client takes and hands them out: target names
 * instead of the RetentionTarget enum, the maximum age in milliseconds
 * (`client.admin.setRetentionPolicy` and its siblings).
 */
import { plain } from "./convert.js";
import { type RetentionPolicy as RetentionPolicyMessage, RetentionTarget } from "./gen/strata/v1/admin_pb.js";

/** What a retention policy removes (or, for "archive_transcripts", moves to the archive tier). */
export type RetentionTargetName =
  | "records"
  | "completed_jobs"
  | "dead_jobs"
  | "sealed_transcripts"
  | "artifacts"
  | "audit_log"
  | "request_log"
  | "archive_transcripts";

/** How long a namespace keeps one kind of data. */
export interface RetentionPolicy {
  namespace: string;
  target: RetentionTargetName | "unspecified";
  /** The collection, queue or kind it covers; empty: every queue / kind, sealed transcripts, or a log. */
  selector: string;
  /** Data older than this goes at the next cleanup, in milliseconds. */
  maxAgeMs: number;
  createTime: Date | undefined;
  updateTime: Date | undefined;
}

const TARGETS: { [name in RetentionTargetName]: RetentionTarget } = {
  records: RetentionTarget.RECORDS,
  completed_jobs: RetentionTarget.COMPLETED_JOBS,
  dead_jobs: RetentionTarget.DEAD_JOBS,
  sealed_transcripts: RetentionTarget.SEALED_TRANSCRIPTS,
  artifacts: RetentionTarget.ARTIFACTS,
  audit_log: RetentionTarget.AUDIT_LOG,
  request_log: RetentionTarget.REQUEST_LOG,
  archive_transcripts: RetentionTarget.ARCHIVE_TRANSCRIPTS,
};

/** The enum value of a target name; TypeError for a name it does not know. */
export function targetValue(target: RetentionTargetName): RetentionTarget {
  const value = TARGETS[target];
  if (value === undefined) throw new TypeError(`unknown retention target ${String(target)}`);
  return value;
}

/** A policy as the client hands it out. */
export function policyFromProto(message: RetentionPolicyMessage): RetentionPolicy {
  const name = (Object.keys(TARGETS) as RetentionTargetName[]).find(
    (key) => TARGETS[key] === message.target,
  );
  const { maxAge, createTime, updateTime, ...rest } = plain(message);
  return {
    ...rest,
    target: name ?? "unspecified",
    maxAgeMs: maxAge ?? 0,
    createTime,
    updateTime,
  };
}
