/**
 * Records: JSON documents in named collections (RecordService).
 *
 *     const notes = client.records("notes");
 *     const note = await notes.create({ recordId: "n1", data: { title: "hello" } });
 *     for await (const r of notes.list({ filter: 'data.title = "hello"' })) console.log(r.id);
 *
 * `data` is a plain JSON object both ways (protobuf-es maps google.protobuf.Struct
 * to JSON); versions are numbers; times are Dates.
 */
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import {
  type JsonObject,
  fromTimestamp,
  requiredDate,
  toInt64,
  toStruct,
  toTimestamp,
} from "./convert.js";
import type { StrataError } from "./errors.js";
import {
  ChangeKind,
  type Record as RecordMessage,
  type RecordChange as RecordChangeMessage,
  RecordSchema,
  RecordService,
} from "./gen/strata/v1/records_pb.js";
import { Reconnects, type ResumeOptions } from "./resume.js";

/** A JSON document stored in a collection. */
export interface Record {
  /** The tenant or workspace the record belongs to. */
  namespace: string;
  /** The collection the record belongs to. */
  collection: string;
  /** The record's id, unique within namespace and collection. */
  id: string;
  /** The document itself, a plain JSON object. */
  data: JsonObject;
  /** Starts at 1 and grows by 1 on every write. */
  version: number;
  /** When the record was created. */
  createTime: Date;
  /** When the record was last written. */
  updateTime: Date;
  /** When the record stops being visible; undefined means never. */
  expireTime?: Date;
  /** Who the record belongs to; empty means none. */
  owner: string;
}

/** The record a `strata.v1.Record` message describes. */
export function recordFromProto(message: RecordMessage): Record {
  const record: Record = {
    namespace: message.namespace,
    collection: message.collection,
    id: message.id,
    data: message.data ?? {},
    version: Number(message.version),
    createTime: requiredDate(message.createTime),
    updateTime: requiredDate(message.updateTime),
    owner: message.owner,
  };
  const expireTime = fromTimestamp(message.expireTime);
  if (expireTime !== undefined) record.expireTime = expireTime;
  return record;
}

/** What a create takes. */
export interface CreateOptions extends CallOptions {
  /** The document to store. */
  data: JsonObject;
  /** The new record's id; empty or absent lets the server choose one. */
  recordId?: string;
  /** The time from which the record is invisible (and later purged). */
  expireTime?: Date;
  /** Who the record belongs to (at most 256 printable characters); absent: none. */
  owner?: string;
  /**
   * An idempotency key (see `newRequestId`): a retry with the same key returns
   * the first result and writes nothing, so the client retries the create after
   * UNAVAILABLE; without one it is never retried.
   */
  requestId?: string;
}

/** What an update takes. */
export interface UpdateOptions extends CallOptions {
  /** The new document, or the source of the values named by `updateMask`. */
  data: JsonObject;
  /**
   * Paths to change (`data`, `data.<key>[.<key>...]`, `expire_time`); a path
   * absent from `data` is removed. Absent replaces the whole document and expiry.
   */
  updateMask?: string[];
  /** Write only if the record is at this version, else throw VersionConflictError. */
  expectedVersion?: number | bigint;
  /** Create the record when it does not exist. */
  allowMissing?: boolean;
  /** New expiry, applied on a full replace or when `expire_time` is in the mask. */
  expireTime?: Date;
  /** The new owner ("" removes it); absent keeps the record's owner. */
  owner?: string;
}

/** What a delete takes. */
export interface DeleteOptions extends CallOptions {
  /** Delete only if the record is at this version, else throw VersionConflictError. */
  expectedVersion?: number | bigint;
  /** Succeed when the record does not exist. */
  allowMissing?: boolean;
  /**
   * Also delete the transcripts and artifacts whose parent is the record; without
   * it a record with any throws FailedPreconditionError (reason HAS_CHILDREN).
   */
  cascade?: boolean;
}

/** What a list takes. */
export interface ListOptions extends CallOptions {
  /** AIP-160 filter, e.g. `data.status = "open" AND data.size > 3`. */
  filter?: string;
  /** Only the records of this owner: `owner = "<owner>"`, quoted, ANDed with `filter`. */
  owner?: string;
  /** E.g. `data.rank desc, id`; the record id always breaks ties. Default `id`. */
  orderBy?: string;
  /** Records per page fetched (0 or absent: the server's default, 50). */
  pageSize?: number;
}

/** One search hit. */
export interface RecordHit {
  /** The matching record. */
  record: Record;
  /** Relevance; higher is better, comparable only within one search. */
  score: number;
}

/** What happened to a record. */
export type ChangeKindName = "created" | "updated" | "deleted" | "unspecified";

/** A change to one record, in commit order. */
export interface RecordChange {
  /** What happened. */
  kind: ChangeKindName;
  /** The record's collection. */
  collection: string;
  /** The record's id. */
  recordId: string;
  /** The version the change produced; for a delete, the version deleted. */
  version: number;
  /** When the change was committed. */
  time: Date;
  /** The record as it is when the change is read; undefined for a delete. */
  record?: Record;
  /** Resume from here (`fromCursor`) to receive the changes after this one. */
  cursor: string;
}

/** What a watch takes. */
export interface WatchOptions extends ResumeOptions, CallOptions {
  /** Only creates and updates of records matching this AIP-160 filter (deletes always come). */
  filter?: string;
  /** A cursor from an earlier watch, to resume just after it; absent: changes from now on. */
  fromCursor?: string;
  /** Stops the watch: the iteration ends. */
  signal?: AbortSignal;
}

const CHANGE_KINDS: { [kind in ChangeKind]: ChangeKindName } = {
  [ChangeKind.UNSPECIFIED]: "unspecified",
  [ChangeKind.CREATED]: "created",
  [ChangeKind.UPDATED]: "updated",
  [ChangeKind.DELETED]: "deleted",
};

function changeFromProto(message: RecordChangeMessage): RecordChange {
  const change: RecordChange = {
    kind: CHANGE_KINDS[message.kind] ?? "unspecified",
    collection: message.collection,
    recordId: message.recordId,
    version: Number(message.version),
    time: requiredDate(message.time),
    cursor: message.cursor,
  };
  if (message.record !== undefined) change.record = recordFromProto(message.record);
  return change;
}

/** The records of one collection in one namespace: `client.records("notes")`. */
export class Records {
  constructor(
    private readonly connection: Connection,
    /** The collection. */
    readonly collection: string,
    /** The namespace. */
    readonly namespace: string,
  ) {}

  private get service() {
    return this.connection.client(RecordService);
  }

  /**
   * Create a record holding `data` and return it at version 1. Throws
   * AlreadyExistsError, InvalidArgumentError, ResourceExhaustedError (too large).
   */
  async create(options: CreateOptions): Promise<Record> {
    const request = {
      namespace: this.namespace,
      collection: this.collection,
      recordId: options.recordId ?? "",
      data: toStruct(options.data, "data"),
      expireTime: toTimestamp(options.expireTime, "expireTime"),
      requestId: options.requestId ?? "",
      owner: options.owner ?? "",
    };
    const message = await this.connection.unary(
      (call) => this.service.createRecord(request, call),
      { idempotent: Boolean(options.requestId) },
      options,
    );
    return recordFromProto(message);
  }

  /** Return one record. Throws NotFoundError when it does not exist or has expired. */
  async get(id: string, options: CallOptions = {}): Promise<Record> {
    const request = { namespace: this.namespace, collection: this.collection, id };
    const message = await this.connection.unary(
      (call) => this.service.getRecord(request, call),
      { idempotent: true },
      options,
    );
    return recordFromProto(message);
  }

  /**
   * The records that exist among up to 1000 ids, in the order asked, and the
   * ids that do not exist or have expired.
   */
  async batchGet(
    ids: string[],
    options: CallOptions = {},
  ): Promise<{ records: Record[]; missingIds: string[] }> {
    const request = { namespace: this.namespace, collection: this.collection, ids };
    const response = await this.connection.unary(
      (call) => this.service.batchGetRecords(request, call),
      { idempotent: true },
      options,
    );
    return { records: response.records.map(recordFromProto), missingIds: response.missingIds };
  }

  /**
   * Replace a record's data, or with `updateMask` change only the paths named,
   * and return the record as written. A stale `expectedVersion` throws
   * VersionConflictError, whose `currentVersion` says where the record is.
   * Throws NotFoundError, InvalidArgumentError, ResourceExhaustedError. Not
   * retried after UNAVAILABLE, since it may have been applied.
   */
  async update(id: string, options: UpdateOptions): Promise<Record> {
    const request = {
      namespace: this.namespace,
      collection: this.collection,
      id,
      ...updateFields(options),
    };
    const message = await this.connection.unary(
      (call) => this.service.updateRecord(request, call),
      { idempotent: false },
      options,
    );
    return recordFromProto(message);
  }

  /**
   * Delete a record. Throws NotFoundError when it does not exist (unless
   * `allowMissing`), VersionConflictError when `expectedVersion` is stale.
   */
  async delete(id: string, options: DeleteOptions = {}): Promise<void> {
    const request = {
      namespace: this.namespace,
      collection: this.collection,
      id,
      expectedVersion: toInt64(options.expectedVersion, "expectedVersion"),
      allowMissing: options.allowMissing ?? false,
      cascade: options.cascade ?? false,
    };
    await this.connection.unary(
      (call) => this.service.deleteRecord(request, call),
      { idempotent: false },
      options,
    );
  }

  /**
   * Iterate over the records matching `filter`, in `orderBy` order, fetching a
   * page at a time as the iteration reaches it, until the last page. Throws
   * InvalidArgumentError for a bad filter or order.
   */
  list(options: ListOptions = {}): AsyncGenerator<Record, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        collection: this.collection,
        filter: ownedFilter(options.owner, options.filter),
        orderBy: options.orderBy ?? "",
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.listRecords(request, call),
        { idempotent: true },
        options,
      );
      return {
        items: response.records.map(recordFromProto),
        nextPageToken: response.nextPageToken,
      };
    });
  }

  /** Count the live records matching an AIP-160 `filter` (absent: all of them), of `owner` if given. */
  async count(options: CallOptions & { filter?: string; owner?: string } = {}): Promise<number> {
    const request = {
      namespace: this.namespace,
      collection: this.collection,
      filter: ownedFilter(options.owner, options.filter),
    };
    const response = await this.connection.unary(
      (call) => this.service.countRecords(request, call),
      { idempotent: true },
      options,
    );
    return Number(response.count);
  }

  /**
   * Iterate over the records whose data's string values hold every word of
   * `query`, best first, with their scores. Throws InvalidArgumentError for an
   * empty query.
   */
  search(
    query: string,
    options: CallOptions & { pageSize?: number } = {},
  ): AsyncGenerator<RecordHit, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        collection: this.collection,
        query,
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.searchRecords(request, call),
        { idempotent: true },
        options,
      );
      return {
        items: response.hits.map((hit) => ({
          record: recordFromProto(hit.record ?? create(RecordSchema)),
          score: hit.score,
        })),
        nextPageToken: response.nextPageToken,
      };
    });
  }

  /**
   * The changes to the collection's records, oldest first, from `fromCursor` (or
   * from now on), until `signal` aborts or the loop is left. After a lost
   * connection it resumes from the last change's cursor: no gap, no duplicate.
   */
  watch(options: WatchOptions = {}): RecordWatch {
    return new RecordWatch(this.connection, this.namespace, this.collection, options);
  }
}

/**
 * The filter of an `owner` option and a filter: the owner as an AIP-160 string
 * literal (backslashes and double quotes escaped), ANDed with the filter in
 * parentheses, so neither can change what the other means.
 */
function ownedFilter(owner: string | undefined, filter: string | undefined): string {
  if (owner === undefined) return filter ?? "";
  if (typeof owner !== "string") throw new TypeError("owner must be a string");
  const condition = `owner = "${owner.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
  return filter ? `${condition} AND (${filter})` : condition;
}

/** The update fields UpdateRecordRequest shares with a Commit's update write. */
export function updateFields(options: UpdateOptions) {
  return {
    data: toStruct(options.data, "data"),
    updateMask:
      options.updateMask === undefined
        ? undefined
        : create(FieldMaskSchema, { paths: maskPaths(options.updateMask) }),
    expectedVersion: toInt64(options.expectedVersion, "expectedVersion"),
    allowMissing: options.allowMissing ?? false,
    expireTime: toTimestamp(options.expireTime, "expireTime"),
    owner: options.owner,
  };
}

function maskPaths(paths: string[]): string[] {
  if (!Array.isArray(paths)) throw new TypeError("updateMask must be an array of paths");
  return paths;
}

/**
 * A running watch: iterate over it (`for await`); `cursor` is where it stands,
 * `reconnects` how often it resumed. Leave the loop or abort the signal to stop.
 */
export class RecordWatch implements AsyncIterable<RecordChange> {
  /** The cursor of the last change delivered (or the start), to resume from later. */
  cursor: string;
  private readonly reconnecting: Reconnects;

  constructor(
    private readonly connection: Connection,
    private readonly namespace: string,
    private readonly collection: string,
    private readonly options: WatchOptions,
  ) {
    this.cursor = options.fromCursor ?? "";
    this.reconnecting = new Reconnects(connection.retry, options);
  }

  /** How many times the stream was opened again after it broke. */
  get reconnects(): number {
    return this.reconnecting.count;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<RecordChange, void, undefined> {
    const service = this.connection.client(RecordService);
    const signal = this.options.signal;
    while (!signal?.aborted) {
      const request = {
        namespace: this.namespace,
        collection: this.collection,
        filter: this.options.filter ?? "",
        fromCursor: this.cursor,
      };
      const call = { signal, timeoutMs: this.options.timeoutMs };
      let error: StrataError | undefined;
      try {
        for await (const message of this.connection.stream(
          (options) => service.watchRecords(request, options),
          call,
        )) {
          this.reconnecting.reset();
          if (message.event.case === "started") {
            this.cursor = message.event.value.cursor || this.cursor;
          } else if (message.event.case === "change") {
            const change = changeFromProto(message.event.value);
            this.cursor = change.cursor;
            yield change;
          }
        }
      } catch (thrown) {
        error = thrown as StrataError;
      }
      if (signal?.aborted) return;
      await this.reconnecting.wait(error, signal);
    }
  }
}
