/**
 * Builders of the writes a Commit applies all-or-nothing, and what each produced.
 *
 *     import { writes, newRequestId } from "@strata/client";
 *
 *     const [execution, job] = await client.commit(
 *       [
 *         writes.create("executions", { recordId: "ex-1", data: { state: "queued" } }),
 *         writes.enqueue("runs", { execution: "ex-1" }),
 *         writes.append("ex-1-log", ["queued"]),
 *       ],
 *       { requestId: newRequestId() },
 *     );
 *
 * Each builder takes the options of the matching client method but for the
 * namespace (the commit's) and the request id (the commit has one for all).
 */
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { type JsonObject, toInt64, toStruct, toTimestamp } from "./convert.js";
import {
  type CommitResponse,
  type Write,
  WriteSchema,
} from "./gen/strata/v1/transaction_pb.js";
import { type Job, jobFromProto } from "./jobs.js";
import { type JobOptions, jobFields } from "./queue.js";
import { type Record, type UpdateOptions, recordFromProto, updateFields } from "./records.js";
import { type Appended, type EntryInput, appendedFromProto, entryMessages } from "./transcripts.js";

export type { Write };

/** A write that creates a record; `recordId` absent lets the server choose. */
export function createWrite(
  collection: string,
  options: { data: JsonObject; recordId?: string; expireTime?: Date; owner?: string },
): Write {
  return create(WriteSchema, {
    operation: {
      case: "create",
      value: {
        collection,
        recordId: options.recordId ?? "",
        data: toStruct(options.data, "data"),
        expireTime: toTimestamp(options.expireTime, "expireTime"),
        owner: options.owner ?? "",
      },
    },
  });
}

/** A write that replaces a record's data, or merges the `updateMask` paths. */
export function updateWrite(
  collection: string,
  id: string,
  options: Omit<UpdateOptions, "timeoutMs" | "signal">,
): Write {
  return create(WriteSchema, {
    operation: { case: "update", value: { collection, id, ...updateFields(options) } },
  });
}

/** A write that deletes a record. */
export function deleteWrite(
  collection: string,
  id: string,
  options: { expectedVersion?: number | bigint; allowMissing?: boolean; cascade?: boolean } = {},
): Write {
  return create(WriteSchema, {
    operation: {
      case: "delete",
      value: {
        collection,
        id,
        expectedVersion: toInt64(options.expectedVersion, "expectedVersion"),
        allowMissing: options.allowMissing ?? false,
        cascade: options.cascade ?? false,
      },
    },
  });
}

/** A write that enqueues a job: it exists only if the whole commit succeeds. */
export function enqueueWrite(queue: string, payload: JsonObject, options: JobOptions = {}): Write {
  return create(WriteSchema, {
    operation: { case: "enqueue", value: { queue, ...jobFields(payload, options) } },
  });
}

/**
 * A write that appends entries to a transcript: readers see them only if the
 * whole commit succeeds.
 */
export function appendWrite(
  transcriptId: string,
  entries: EntryInput[],
  options: { expectedNextSeq?: number } = {},
): Write {
  return create(WriteSchema, {
    operation: {
      case: "append",
      value: {
        id: transcriptId,
        entries: entryMessages(entries),
        expectedNextSeq: toInt64(options.expectedNextSeq, "expectedNextSeq"),
      },
    },
  });
}

/** The builders, as `writes.create(...)`, `writes.enqueue(...)`, .... */
export const writes = {
  create: createWrite,
  update: updateWrite,
  delete: deleteWrite,
  enqueue: enqueueWrite,
  append: appendWrite,
} as const;

/** The record a delete write removed (or, with allowMissing, did not find). */
export interface Deleted {
  collection: string;
  id: string;
  /** Whether a record existed and was removed (false only with allowMissing). */
  existed: boolean;
}

/**
 * What one write of a Commit produced: the record written by a create or
 * update, the record deleted, the job enqueued, or where the entries landed.
 */
export type WriteResult =
  | { case: "record"; value: Record }
  | { case: "deleted"; value: Deleted }
  | { case: "job"; value: Job }
  | { case: "appended"; value: Appended };

/** The results of a CommitResponse, in the order of the writes. */
export function writeResults(response: CommitResponse): WriteResult[] {
  return response.results.map((result): WriteResult => {
    const outcome = result.result;
    switch (outcome.case) {
      case "deleted":
        return {
          case: "deleted",
          value: {
            collection: outcome.value.collection,
            id: outcome.value.id,
            existed: outcome.value.existed,
          },
        };
      case "job":
        return { case: "job", value: jobFromProto(outcome.value) };
      case "appended":
        return { case: "appended", value: appendedFromProto(outcome.value) };
      case "record":
        return { case: "record", value: recordFromProto(outcome.value) };
      default:
        throw new TypeError("a Commit result of a kind this client does not know");
    }
  });
}

/**
 * A fresh idempotency key for a create, an enqueue, an append or a commit. Make
 * one per logical write and reuse it when retrying that write yourself: the
 * server then applies it once and returns the first result again.
 */
export function newRequestId(): string {
  return randomUUID();
}
