/**
 * The connection to a server and the one path every call takes through it.
 *
 * `Connection` owns the HTTP/2 session (Connect's gRPC transport over Node's
 * `http2`), the metadata sent with every call (bearer token, actor), the
 * deadline of each attempt and the retry schedule; `unary` and `stream` are the
 * only places a call is sent, and the only places a failure becomes a
 * `StrataError`. The service handles (records, queue, ...) only build requests
 * and read responses, as the Python client's call descriptions do.
 */
import type { DescService } from "@bufbuild/protobuf";
import {
  type CallOptions as ConnectCallOptions,
  type Client,
  type Interceptor,
  type Transport,
  createClient,
} from "@connectrpc/connect";
import {
  type GrpcTransportOptions,
  Http2SessionManager,
  createGrpcTransport,
} from "@connectrpc/connect-node";
import type {
  ClientHttp2Stream,
  ClientSessionRequestOptions,
  Http2Session,
  OutgoingHttpHeaders,
} from "node:http2";
import { Refusals, type TlsOptions, endpoint } from "./endpoint.js";
import { type StrataError, toStrataError } from "./errors.js";
import { type RetryPolicy, RetrySchedule, retryPolicy, sleep } from "./retry.js";

export type { TlsOptions };

/** Where a client connects and the defaults it applies to every call. */
export interface StrataClientOptions {
  /**
   * The server's address: "host:port" (plaintext, or TLS when `tls` is set), or
   * a URL "http://host:port" / "https://host:port". Default "127.0.0.1:50051".
   */
  target?: string;
  /** Tenant or workspace of every call; default "default". */
  namespace?: string;
  /** A bearer token (`strata token create`), sent as `authorization: Bearer <token>`. */
  token?: string;
  /** TLS: `true` for the system's CAs, or the CA / client certificate to use. */
  tls?: boolean | TlsOptions;
  /** Deadline of each attempt of a unary call, in milliseconds; default 10000. */
  timeoutMs?: number;
  /** How transient failures are retried; see {@link RetryPolicy}. */
  retry?: Partial<RetryPolicy>;
  /** Who is acting, sent as `x-strata-actor` metadata and written to the audit log. */
  actor?: string;
  /** Further metadata sent with every call. */
  headers?: Record<string, string>;
  /** Largest message the client sends or accepts, in bytes; default 16 MiB. */
  maxMessageBytes?: number;
}

/** Per-call options every method takes. */
export interface CallOptions {
  /** This call's deadline in milliseconds, instead of the client's `timeoutMs`. */
  timeoutMs?: number | undefined;
  /** Cancels the call (and its retries) when it aborts. */
  signal?: AbortSignal | undefined;
}

/** How one unary call may be retried and how long the server may hold it. */
export interface Attempts {
  /** Whether sending the request twice has the effect of sending it once. */
  idempotent: boolean;
  /** Milliseconds the server may hold the call (a long poll), added to the deadline. */
  waitMs?: number;
  /** Never send it twice, whatever the error (a client stream whose source is consumed). */
  once?: boolean;
}

const MiB = 1 << 20;

/**
 * HTTP/2 flow-control windows the client grants the server, per stream and for
 * the connection. Node's default (64 KiB, the protocol's) lets a server send one
 * 64 KiB transcript batch and then wait a round trip through this process's
 * event loop for the window to reopen; gRPC's own clients widen theirs the same
 * way (by BDP estimate, up to a few MiB). The memory this allows in flight is
 * bounded by these sizes, never by a payload's.
 */
const STREAM_WINDOW = 4 * MiB;
const CONNECTION_WINDOW = 8 * MiB;

/**
 * Connect's session manager, widening each new HTTP/2 session's connection
 * window once: Node takes the per-stream window as a setting, the connection's
 * only through `setLocalWindowSize` on the open session.
 */
class WideWindows implements NonNullable<GrpcTransportOptions["sessionManager"]> {
  private readonly widened = new WeakSet<Http2Session>();

  constructor(private readonly manager: Http2SessionManager) {}

  get authority(): string {
    return this.manager.authority;
  }

  async request(
    method: string,
    path: string,
    headers: OutgoingHttpHeaders,
    options: Omit<ClientSessionRequestOptions, "signal">,
  ): Promise<ClientHttp2Stream> {
    const stream = await this.manager.request(method, path, headers, options);
    const session = stream.session;
    if (session !== undefined && !this.widened.has(session)) {
      this.widened.add(session);
      session.setLocalWindowSize(CONNECTION_WINDOW);
    }
    return stream;
  }

  notifyResponseByteRead(stream: ClientHttp2Stream): void {
    this.manager.notifyResponseByteRead(stream);
  }
}

/** A connection to one server; shared by a client and its `withNamespace` views. */
export class Connection {
  readonly target: string;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  private readonly session: Http2SessionManager;
  private readonly transport: Transport;
  private readonly clients = new Map<DescService, unknown>();
  private readonly refusals: Refusals;

  constructor(options: StrataClientOptions) {
    this.target = options.target ?? "127.0.0.1:50051";
    this.timeoutMs = options.timeoutMs ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new RangeError("timeoutMs must be positive");
    this.retry = retryPolicy(options.retry);
    const headers = { ...(options.headers ?? {}) };
    if (options.token !== undefined) headers["authorization"] = `Bearer ${options.token}`;
    if (options.actor !== undefined) headers["x-strata-actor"] = options.actor;
    this.refusals = new Refusals(this.target);
    const { baseUrl, nodeOptions } = endpoint(this.target, options.tls, this.refusals);
    nodeOptions.settings = { initialWindowSize: STREAM_WINDOW };
    this.session = new Http2SessionManager(baseUrl, {}, nodeOptions);
    const maxBytes = options.maxMessageBytes ?? 16 * MiB;
    this.transport = createGrpcTransport({
      baseUrl,
      sessionManager: new WideWindows(this.session),
      readMaxBytes: maxBytes,
      writeMaxBytes: maxBytes,
      // The server does not compress; asking costs a header per call for nothing.
      acceptCompression: [],
      interceptors: [withHeaders(headers)],
    });
  }

  /** The generated Connect client of a service, over this connection. */
  client<S extends DescService>(service: S): Client<S> {
    let client = this.clients.get(service) as Client<S> | undefined;
    if (client === undefined) {
      client = createClient(service, this.transport);
      this.clients.set(service, client);
    }
    return client;
  }

  /**
   * Send a unary (or client-streaming) call, retrying as `attempts` allows: the
   * one path of every such call. `send` is called once per attempt.
   */
  async unary<T>(
    send: (options: ConnectCallOptions) => Promise<T>,
    attempts: Attempts,
    call: CallOptions = {},
  ): Promise<T> {
    const policy = attempts.once ? { ...this.retry, maxAttempts: 1 } : this.retry;
    const schedule = new RetrySchedule(policy, attempts.idempotent);
    const options = this.options(call, (call.timeoutMs ?? this.timeoutMs) + (attempts.waitMs ?? 0));
    for (;;) {
      let error: StrataError;
      const startedAt = performance.now();
      try {
        return await send(options);
      } catch (thrown) {
        error = this.refusals.explain(toStrataError(thrown), startedAt, call.signal);
      }
      const delay = schedule.backoff(error);
      if (delay === undefined) throw error;
      try {
        await sleep(delay, call.signal);
      } catch {
        throw error;
      }
    }
  }

  /**
   * Open a server-streaming call and yield its messages; a failure is thrown as
   * a StrataError. Not retried here: the readers that resume (transcript reads,
   * record watches) know where to resume from. No deadline unless the call sets one.
   */
  async *stream<T>(
    open: (options: ConnectCallOptions) => AsyncIterable<T>,
    call: CallOptions = {},
  ): AsyncGenerator<T, void, undefined> {
    const startedAt = performance.now();
    try {
      yield* open(this.options(call, call.timeoutMs));
    } catch (thrown) {
      throw this.refusals.explain(toStrataError(thrown), startedAt, call.signal);
    }
  }

  /** Close the HTTP/2 connection; calls in flight fail, later calls reconnect. */
  close(): void {
    this.session.abort();
  }

  private options(call: CallOptions, timeoutMs: number | undefined): ConnectCallOptions {
    const options: ConnectCallOptions = {};
    if (timeoutMs !== undefined) options.timeoutMs = timeoutMs;
    if (call.signal !== undefined) options.signal = call.signal;
    return options;
  }
}

/**
 * The metadata of every call (token, actor, the caller's own headers), set on
 * each request by the transport: also on calls made through `client.service()`.
 */
function withHeaders(headers: Record<string, string>): Interceptor {
  const entries = Object.entries(headers);
  return (next) => (request) => {
    for (const [key, value] of entries) request.header.set(key, value);
    return next(request);
  };
}

/** Iterate over the items of every page of a List-style call, fetching each as it is reached. */
export async function* paginate<T>(
  page: (token: string) => Promise<{ items: T[]; nextPageToken: string }>,
): AsyncGenerator<T, void, undefined> {
  let token = "";
  do {
    const result = await page(token);
    yield* result.items;
    token = result.nextPageToken;
  } while (token !== "");
}
