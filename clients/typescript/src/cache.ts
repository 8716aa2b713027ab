/**
 * The cache: short-lived bytes under string keys, one key space per namespace
 * (CacheService): `client.cache`. A cache may forget an entry at any time, so a
 * miss (`undefined`) is normal.
 */
import type { CallOptions, Connection } from "./connection.js";
import { toDuration } from "./convert.js";
import { CacheService } from "./gen/strata/v1/cache_pb.js";

/** The cache of one namespace. */
export class Cache {
  constructor(
    private readonly connection: Connection,
    /** The namespace. */
    readonly namespace: string,
  ) {}

  private get service() {
    return this.connection.client(CacheService);
  }

  /** The bytes under `key`, or undefined when there are none or they expired. */
  async get(key: string, options: CallOptions = {}): Promise<Uint8Array | undefined> {
    const request = { namespace: this.namespace, key };
    const response = await this.connection.unary(
      (call) => this.service.get(request, call),
      { idempotent: true },
      options,
    );
    return response.found ? response.value : undefined;
  }

  /**
   * Keep `value` (bytes, or a string stored as UTF-8) under `key` for `ttlMs`
   * (default the server's 5 minutes; at most 30 days), replacing any value.
   * Throws ResourceExhaustedError (reason TOO_LARGE) past the server's limit,
   * FailedPreconditionError (reason CACHE_NOT_CONFIGURED) on a server without a cache.
   */
  async set(
    key: string,
    value: Uint8Array | string,
    options: CallOptions & { ttlMs?: number } = {},
  ): Promise<void> {
    const request = {
      namespace: this.namespace,
      key,
      value: typeof value === "string" ? Buffer.from(value, "utf8") : value,
      ttl: toDuration(options.ttlMs, "ttlMs"),
    };
    await this.connection.unary(
      (call) => this.service.set(request, call),
      { idempotent: true },
      options,
    );
  }

  /** Remove `key`; resolves to whether it held a value. */
  async delete(key: string, options: CallOptions = {}): Promise<boolean> {
    const request = { namespace: this.namespace, key };
    const response = await this.connection.unary(
      (call) => this.service.delete(request, call),
      { idempotent: true },
      options,
    );
    return response.existed;
  }
}
