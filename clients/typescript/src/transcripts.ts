/**
 * Transcripts: append-only logs of entries, such as chat or agent sessions
 * (TranscriptService): `client.transcripts`.
 *
 *     await client.transcripts.create({ transcriptId: "chat-1" });
 *     await client.transcripts.append("chat-1", [{ role: "user", content: "Hello" }]);
 *     for await (const entry of client.transcripts.read("chat-1", { follow: true })) {
 *       console.log(entry.seq, entry.content);   // live; ends once the transcript is sealed
 *     }
 */
import { create } from "@bufbuild/protobuf";
import type { CallOptions as ConnectCallOptions } from "@connectrpc/connect";
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import {
  type JsonObject,
  fromTimestamp,
  requiredDate,
  toInt64,
  toStruct,
} from "./convert.js";
import type { StrataError } from "./errors.js";
import {
  type AppendEntriesResponse,
  type Entry as EntryMessage,
  EntrySchema,
  type Transcript as TranscriptMessage,
  type TranscriptHit as TranscriptHitMessage,
  TranscriptService,
  TranscriptTier,
} from "./gen/strata/v1/transcripts_pb.js";
import { Reconnects, type ResumeOptions } from "./resume.js";
import { type Entry, TranscriptServiceRawEntries, decodeEntry } from "./entry-wire.js";

/** What a ReadTranscript stream of TranscriptServiceRawEntries yields: entries as bytes. */
type RawEntriesMessage = {
  event:
    | { case: "batch"; value: { entries: Uint8Array[]; nextSeq: bigint } }
    | { case: "upToDate" | "heartbeat"; value: { nextSeq: bigint } }
    | { case: "sealed"; value: { nextSeq: bigint } }
    | { case: undefined; value?: undefined };
};

/** The Connect client of TranscriptServiceRawEntries, as far as reads go. */
interface RawEntriesClient {
  readTranscript(
    request: {
      namespace: string;
      id: string;
      fromSeq: bigint;
      follow: boolean;
      maxBatchBytes: number;
    },
    options: ConnectCallOptions,
  ): AsyncIterable<RawEntriesMessage>;
}

/** An append-only log of entries. */
export interface Transcript {
  namespace: string;
  /** Unique within the namespace. */
  id: string;
  /** Who the transcript belongs to; may be empty. */
  owner: string;
  /** A human-readable title; may be empty. */
  title: string;
  /** Free key/value labels. */
  labels: { [key: string]: string };
  /** The seq the next entry gets; the entries are 1..nextSeq-1. */
  nextSeq: number;
  /** Bytes of all entries, as the server counts them for batches. */
  sizeBytes: number;
  /** Whether the transcript takes no more entries. */
  sealed: boolean;
  createTime: Date;
  updateTime: Date;
  /** When it was sealed; undefined while open. */
  sealTime?: Date;
  /** The record it belongs to; undefined when none. */
  parent?: { collection: string; id: string };
  /**
   * Where its entries are kept: "hot" (database rows) or "archived" (compressed
   * segments in the blob store, moved there by an archive retention policy; reads
   * and search are the same, `restore` makes it hot again); "unspecified" from a
   * server that predates tiers.
   */
  tier: TranscriptTierName;
}

/** Where a transcript's entries are kept. */
export type TranscriptTierName = "hot" | "archived" | "unspecified";

const TIERS: { [tier in TranscriptTier]: TranscriptTierName } = {
  [TranscriptTier.UNSPECIFIED]: "unspecified",
  [TranscriptTier.HOT]: "hot",
  [TranscriptTier.ARCHIVED]: "archived",
};

/** An entry to append: its text, or its role, content and data. */
export type EntryInput = string | { role?: string; content?: string; data?: JsonObject };

/** Where an append landed: its entries are firstSeq..nextSeq-1. */
export interface Appended {
  firstSeq: number;
  nextSeq: number;
}

/** An entry matching a search. */
export interface TranscriptHit {
  transcriptId: string;
  /** The entry's seq (read it with `read(transcriptId, { fromSeq: seq })`). */
  seq: number;
  role: string;
  /** A fragment of the content around the matches, each match between `**`. */
  snippet: string;
  /** Relevance; higher is better, comparable only within one search. */
  score: number;
  createTime: Date;
}

/** The transcript a `strata.v1.Transcript` message describes. */
export function transcriptFromProto(message: TranscriptMessage): Transcript {
  const transcript: Transcript = {
    namespace: message.namespace,
    id: message.id,
    owner: message.owner,
    title: message.title,
    labels: { ...message.labels },
    nextSeq: Number(message.nextSeq),
    sizeBytes: Number(message.sizeBytes),
    sealed: message.sealed,
    createTime: requiredDate(message.createTime),
    updateTime: requiredDate(message.updateTime),
    tier: TIERS[message.tier] ?? "unspecified",
  };
  const sealTime = fromTimestamp(message.sealTime);
  if (sealTime !== undefined) transcript.sealTime = sealTime;
  if (message.parent !== undefined) {
    transcript.parent = { collection: message.parent.collection, id: message.parent.id };
  }
  return transcript;
}

/** Where an AppendEntriesResponse says an append landed. */
export function appendedFromProto(message: AppendEntriesResponse): Appended {
  return { firstSeq: Number(message.firstSeq), nextSeq: Number(message.nextSeq) };
}

function hitFromProto(message: TranscriptHitMessage): TranscriptHit {
  return {
    transcriptId: message.transcriptId,
    seq: Number(message.seq),
    role: message.role,
    snippet: message.snippet,
    score: message.score,
    createTime: requiredDate(message.createTime),
  };
}

/** Entries to append, as messages. */
export function entryMessages(entries: EntryInput[]): EntryMessage[] {
  if (!Array.isArray(entries)) throw new TypeError("entries must be an array");
  return entries.map((entry, index) => {
    if (typeof entry === "string") return create(EntrySchema, { content: entry });
    if (entry === null || typeof entry !== "object") {
      throw new TypeError(`entries[${index}] must be a string or an object`);
    }
    return create(EntrySchema, {
      role: entry.role ?? "",
      content: entry.content ?? "",
      data: entry.data === undefined ? undefined : toStruct(entry.data, `entries[${index}].data`),
    });
  });
}

/** What `create` takes. */
export interface CreateTranscriptOptions extends CallOptions {
  /** The new transcript's id; absent lets the server choose one. */
  transcriptId?: string;
  owner?: string;
  title?: string;
  labels?: { [key: string]: string };
  /** An idempotency key; with one the create is retried after UNAVAILABLE. */
  requestId?: string;
  /** The record it belongs to (deleting that record then refuses or cascades). */
  parent?: { collection: string; id: string };
}

/** What `append` takes. */
export interface AppendOptions extends CallOptions {
  /** Append only if the transcript's next seq is this one, else SeqMismatchError. */
  expectedNextSeq?: number;
  /** An idempotency key; with one the append is retried after UNAVAILABLE. */
  requestId?: string;
}

/** What `read` takes. */
export interface ReadOptions extends ResumeOptions, CallOptions {
  /**
   * The first seq to deliver: 1 (the default) reads from the start; a negative
   * value reads that many entries back from the end (-10: the last ten).
   */
  fromSeq?: number;
  /** Keep going: deliver entries as they are appended, until the transcript is sealed. */
  follow?: boolean;
  /** Largest batch the server sends, in bytes (0: its 64 KiB). */
  maxBatchBytes?: number;
  /** Stops the read: the iteration ends. */
  signal?: AbortSignal;
  /** A deadline for each stream opened (none by default): DeadlineExceededError after it. */
  timeoutMs?: number;
}

/** The transcripts of one namespace: `client.transcripts`. */
export class Transcripts {
  constructor(
    private readonly connection: Connection,
    /** The namespace. */
    readonly namespace: string,
  ) {}

  private get service() {
    return this.connection.client(TranscriptService);
  }

  /** Create an empty transcript. Throws AlreadyExistsError, InvalidArgumentError. */
  async create(options: CreateTranscriptOptions = {}): Promise<Transcript> {
    const request = {
      namespace: this.namespace,
      transcriptId: options.transcriptId ?? "",
      owner: options.owner ?? "",
      title: options.title ?? "",
      labels: options.labels ?? {},
      requestId: options.requestId ?? "",
      parent: options.parent,
    };
    const message = await this.connection.unary(
      (call) => this.service.createTranscript(request, call),
      { idempotent: Boolean(options.requestId) },
      options,
    );
    return transcriptFromProto(message);
  }

  /** A transcript's description (not its entries). Throws NotFoundError. */
  async get(id: string, options: CallOptions = {}): Promise<Transcript> {
    const request = { namespace: this.namespace, id };
    const message = await this.connection.unary(
      (call) => this.service.getTranscript(request, call),
      { idempotent: true },
      options,
    );
    return transcriptFromProto(message);
  }

  /** Iterate over the transcripts, newest first, optionally of one owner and/or parent. */
  list(
    options: CallOptions & {
      owner?: string;
      parent?: { collection: string; id: string };
      pageSize?: number;
    } = {},
  ): AsyncGenerator<Transcript, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        owner: options.owner ?? "",
        parent: options.parent,
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.listTranscripts(request, call),
        { idempotent: true },
        options,
      );
      return {
        items: response.transcripts.map(transcriptFromProto),
        nextPageToken: response.nextPageToken,
      };
    });
  }

  /**
   * Append entries (strings, or objects with role, content and data) in one
   * transaction, all or none. Throws SeqMismatchError (a stale
   * `expectedNextSeq`; its `nextSeq` is the actual one), TranscriptSealedError,
   * ResourceExhaustedError (an entry too large; `entryIndex` says which),
   * InvalidArgumentError, NotFoundError.
   */
  async append(id: string, entries: EntryInput[], options: AppendOptions = {}): Promise<Appended> {
    const request = {
      namespace: this.namespace,
      id,
      entries: entryMessages(entries),
      expectedNextSeq: toInt64(options.expectedNextSeq, "expectedNextSeq"),
      requestId: options.requestId ?? "",
    };
    const response = await this.connection.unary(
      (call) => this.service.appendEntries(request, call),
      { idempotent: Boolean(options.requestId) },
      options,
    );
    return appendedFromProto(response);
  }

  /** Seal a transcript: appends fail from then on, readers end after the last entry. */
  async seal(id: string, options: CallOptions = {}): Promise<Transcript> {
    const request = { namespace: this.namespace, id };
    const message = await this.connection.unary(
      (call) => this.service.sealTranscript(request, call),
      { idempotent: true },
      options,
    );
    return transcriptFromProto(message);
  }

  /**
   * Bring an archived transcript's entries back to the database and return it
   * (hot); a hot transcript comes back unchanged. Needs a writer. Throws
   * NotFoundError, UnavailableError (the blob store), DataLossError (a segment is
   * missing).
   */
  async restore(id: string, options: CallOptions = {}): Promise<Transcript> {
    const request = { namespace: this.namespace, id };
    const message = await this.connection.unary(
      (call) => this.service.restoreTranscript(request, call),
      { idempotent: true },
      options,
    );
    return transcriptFromProto(message);
  }

  /** Delete a transcript and its entries; its followers end with NotFoundError. */
  async delete(id: string, options: CallOptions = {}): Promise<void> {
    const request = { namespace: this.namespace, id };
    await this.connection.unary(
      (call) => this.service.deleteTranscript(request, call),
      { idempotent: false },
      options,
    );
  }

  /**
   * Iterate over the entries whose content holds every word of `query`, best
   * first, of every transcript or of `id`'s.
   */
  search(
    query: string,
    options: CallOptions & { id?: string; pageSize?: number } = {},
  ): AsyncGenerator<TranscriptHit, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        namespace: this.namespace,
        query,
        id: options.id ?? "",
        pageSize: options.pageSize ?? 0,
        pageToken,
      };
      const response = await this.connection.unary(
        (call) => this.service.searchTranscripts(request, call),
        { idempotent: true },
        options,
      );
      return { items: response.hits.map(hitFromProto), nextPageToken: response.nextPageToken };
    });
  }

  /**
   * The transcript's entries from `fromSeq`, in seq order, each exactly once.
   * Without `follow` the iteration ends once it has caught up; with it, it
   * delivers entries as they are appended and ends once the transcript is sealed
   * and read to its end. After a lost connection (a server restart, ...) it
   * resumes from the seq after the last entry delivered. Throws NotFoundError
   * for an unknown (or deleted) transcript, OutOfRangeError for a `fromSeq`
   * past the end when not following.
   */
  read(id: string, options: ReadOptions = {}): TranscriptReader {
    return new TranscriptReader(this.connection, this.namespace, id, options);
  }
}

/**
 * A running read of a transcript: iterate over it (`for await`). `nextSeq`,
 * `upToDate`, `sealed` and `reconnects` say where it stands.
 */
export class TranscriptReader implements AsyncIterable<Entry> {
  /** The seq of the next entry to deliver, once the server has said. */
  nextSeq: number | undefined;
  /** Whether every entry appended so far has been delivered (as of the last message). */
  upToDate = false;
  /** Whether the transcript is sealed and was read to its end. */
  sealed = false;
  private readonly reconnecting: Reconnects;

  constructor(
    private readonly connection: Connection,
    private readonly namespace: string,
    private readonly id: string,
    private readonly options: ReadOptions,
  ) {
    const fromSeq = options.fromSeq ?? 1;
    if (!Number.isInteger(fromSeq)) throw new TypeError("fromSeq must be an integer");
    const maxBatchBytes = options.maxBatchBytes ?? 0;
    if (!Number.isInteger(maxBatchBytes) || maxBatchBytes < 0) {
      throw new RangeError("maxBatchBytes must be a non-negative integer (0: the server's)");
    }
    this.reconnecting = new Reconnects(connection.retry, options);
  }

  /** How many times the stream was opened again after it broke. */
  get reconnects(): number {
    return this.reconnecting.count;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Entry, void, undefined> {
    // Entries come as their bytes and are decoded by hand: see entry-wire.ts.
    const service = this.connection.client(TranscriptServiceRawEntries) as unknown as RawEntriesClient;
    const follow = this.options.follow ?? false;
    const signal = this.options.signal;
    const call = { signal, timeoutMs: this.options.timeoutMs };
    while (!signal?.aborted) {
      const request = {
        namespace: this.namespace,
        id: this.id,
        fromSeq: BigInt(this.nextSeq ?? this.options.fromSeq ?? 1),
        follow,
        maxBatchBytes: this.options.maxBatchBytes ?? 0,
      };
      let error: StrataError | undefined;
      try {
        for await (const message of this.connection.stream(
          (options) => service.readTranscript(request, options),
          call,
        )) {
          this.reconnecting.reset();
          const event = message.event;
          if (event.case === "batch") {
            this.upToDate = false;
            for (const bytes of event.value.entries) {
              const entry = decodeEntry(bytes);
              this.nextSeq = entry.seq + 1;
              yield entry;
            }
            this.nextSeq = Number(event.value.nextSeq);
          } else if (event.case === "upToDate") {
            this.nextSeq = Number(event.value.nextSeq);
            this.upToDate = true;
          } else if (event.case === "heartbeat") {
            this.nextSeq = Number(event.value.nextSeq);
          } else if (event.case === "sealed") {
            this.nextSeq = Number(event.value.nextSeq);
            this.upToDate = this.sealed = true;
            return;
          }
        }
        if (!follow) return; // caught up and ended: a read without follow is done
      } catch (thrown) {
        error = thrown as StrataError;
      }
      if (signal?.aborted) return;
      await this.reconnecting.wait(error, signal);
    }
  }
}
