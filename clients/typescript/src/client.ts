/**
 * `StrataClient`: a connection to a Strata server and the handles of its services.
 *
 *     const client = new StrataClient({ target: "127.0.0.1:50051", namespace: "demo" });
 *     const notes = client.records("notes");
 *     const emails = client.queue("emails");
 *     client.transcripts; client.artifacts; client.cache; client.admin;
 *
 * Every method sends its call through the connection's one call path
 * (`Connection.unary` / `Connection.stream`): the client's metadata (token,
 * actor), the per-attempt deadline (`timeoutMs`, or the call's own), the retry
 * policy, and the translation of failures into `StrataError` subclasses.
 */
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { Admin } from "./admin.js";
import { Artifacts } from "./artifacts.js";
import { Cache } from "./cache.js";
import { type CallOptions, Connection, type StrataClientOptions } from "./connection.js";
import { TransactionService } from "./gen/strata/v1/transaction_pb.js";
import { Queue, type QueueStats, listQueues } from "./queue.js";
import { Records } from "./records.js";
import { type SearchHit, type SearchOptions, search } from "./search.js";
import { Transcripts } from "./transcripts.js";
import { type Write, type WriteResult, writeResults } from "./writes.js";

/** A client of one Strata server, in one namespace. Cheap to share; `close()` when done. */
export class StrataClient {
  /** The namespace of every call made through this client. */
  readonly namespace: string;
  /** The server's address, as given. */
  readonly target: string;
  private readonly connection: Connection;
  private handles: {
    transcripts?: Transcripts;
    artifacts?: Artifacts;
    cache?: Cache;
    admin?: Admin;
  } = {};

  /** Connects lazily: the first call opens the HTTP/2 connection. */
  constructor(options?: StrataClientOptions);
  /** @internal A view of an existing connection (`withNamespace`). */
  constructor(options: StrataClientOptions, connection: Connection);
  constructor(options: StrataClientOptions = {}, connection?: Connection) {
    this.connection = connection ?? new Connection(options);
    this.namespace = options.namespace ?? "default";
    this.target = this.connection.target;
  }

  /** The same connection, in another namespace. */
  withNamespace(namespace: string): StrataClient {
    return new StrataClient({ namespace }, this.connection);
  }

  /** The records of `collection`: create/get/batchGet/update/delete/list/count/search/watch. */
  records(collection: string): Records {
    return new Records(this.connection, collection, this.namespace);
  }

  /** The queue `name`: enqueue ... stats, `work(handler)` and `subscribe()`. */
  queue(name: string): Queue {
    return new Queue(this.connection, name, this.namespace);
  }

  /**
   * Every queue of the namespace that holds jobs or is paused, by name, each with
   * its stats (`ListQueues`), fetching `pageSize` per call (0: the server's default).
   */
  listQueues(
    options: CallOptions & { pageSize?: number } = {},
  ): AsyncGenerator<QueueStats, void, undefined> {
    return listQueues(this.connection, this.namespace, options);
  }

  /**
   * Search every kind at once (SearchService): the hits of `query` among records,
   * transcript entries, artifacts' names and labels and text artifacts' content,
   * best first, narrowed by `kinds`, `collections`, `owner` and a time range,
   * fetching `pageSize` per call. Throws InvalidArgumentError for an empty
   * query, a bad collection or a start not before the end.
   */
  search(query: string, options: SearchOptions = {}): AsyncGenerator<SearchHit, void, undefined> {
    return search(this.connection, this.namespace, query, options);
  }

  /** Transcripts: create/get/list/append/seal/delete/restore/search, and `read` (with follow). */
  get transcripts(): Transcripts {
    return (this.handles.transcripts ??= new Transcripts(this.connection, this.namespace));
  }

  /** Artifacts: upload/download/open/get/list/delete/findMissingBlobs/url. */
  get artifacts(): Artifacts {
    return (this.handles.artifacts ??= new Artifacts(this.connection, this.namespace));
  }

  /** The cache: get/set/delete with TTL. */
  get cache(): Cache {
    return (this.handles.cache ??= new Cache(this.connection, this.namespace));
  }

  /** The operator's calls: usage, export/import, retention, cleanup, integrity, audit, indexes, tokens, quotas. */
  get admin(): Admin {
    return (this.handles.admin ??= new Admin(this.connection, this.namespace));
  }

  /**
   * Apply writes (built with `writes.create`, `.update`, `.delete`, `.enqueue`,
   * `.append`) all-or-nothing, in order, and return one result per write. The
   * first failing write's error is thrown with its position in `writeIndex`, and
   * nothing is written. With a `requestId` the commit is idempotent and retried
   * after UNAVAILABLE; without one it is never retried.
   */
  async commit(
    writes: Write[],
    options: CallOptions & { requestId?: string } = {},
  ): Promise<WriteResult[]> {
    const request = { namespace: this.namespace, writes, requestId: options.requestId ?? "" };
    const service = this.connection.client(TransactionService);
    const response = await this.connection.unary(
      (call) => service.commit(request, call),
      { idempotent: Boolean(options.requestId) },
      options,
    );
    return writeResults(response);
  }

  /**
   * The generated Connect client of any Strata service over this connection
   * (with its token and actor metadata), for calls this layer does not wrap.
   * Errors are `ConnectError`s; `toStrataError` types them.
   */
  service<S extends DescService>(service: S): Client<S> {
    return this.connection.client(service);
  }

  /** Close the connection; calls in flight fail (a later call opens a new one). */
  close(): void {
    this.connection.close();
  }
}
