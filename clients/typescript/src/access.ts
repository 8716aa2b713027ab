/**
 * Who may call the server, and how much a namespace may store: the token and
 * quota calls of AdminService, as `client.admin.tokens` and `client.admin.quotas`.
 *
 *     const { secret } = await client.admin.tokens.create({
 *       name: "billing", role: "writer", namespaces: ["billing"], ttlMs: 90 * 86_400_000,
 *     });
 *     for await (const token of client.admin.tokens.list()) console.log(token.name, token.role);
 *     await client.admin.tokens.revoke("billing");
 *     await client.admin.quotas.set(10 * 2 ** 30);   // the client's namespace: 10 GiB
 *
 * Tokens belong to the server, not to a namespace: their calls need an admin
 * token for every namespace ("*"), as does listing every namespace's quota; a
 * namespace's own quota needs an admin token for that namespace. On a server run
 * with `--auth none` anyone may make them.
 */
import type { CallOptions, Connection } from "./connection.js";
import { paginate } from "./connection.js";
import { type Plain, fromTimestamp, plain, toDuration } from "./convert.js";
import { type Quota as QuotaMessage, Role, type Token as TokenMessage } from "./gen/strata/v1/access_pb.js";
import { AdminService } from "./gen/strata/v1/admin_pb.js";

/** What a token may do; each role includes the ones before it. */
export type RoleName = "reader" | "writer" | "admin";

const ROLES: { [name in RoleName]: Role } = {
  reader: Role.READER,
  writer: Role.WRITER,
  admin: Role.ADMIN,
};

/** A bearer token as the server keeps it: never with its secret. */
export interface Token {
  /** The token's unique name: the audit actor of every call made with it. */
  name: string;
  /** What it may do. */
  role: RoleName | "unspecified";
  /** The namespaces it may name; "*" means every namespace. */
  namespaces: string[];
  createTime: Date | undefined;
  /** When it stops being accepted; undefined: never. */
  expireTime: Date | undefined;
  /** When it was revoked; undefined while it is not. */
  revokeTime: Date | undefined;
  /** Requests per second, sustained; 0: the server's default (STRATA_TOKEN_RATE). */
  rateLimit: number;
  /** Requests in one burst above the sustained rate; 0: the server's default. */
  burst: number;
  /** The actor that created it. */
  createdBy: string;
}

/** What `tokens.create` makes. */
export interface NewToken {
  /** A unique name: letters, digits, '.', '_', '-', at most 64 characters. */
  name: string;
  role: RoleName;
  /** The namespaces it may name (at least one), or ["*"] for all of them. */
  namespaces: string[];
  /** How long it is accepted from now, in milliseconds; unset: until revoked. */
  ttlMs?: number;
  /** Requests per second, sustained; unset or 0: the server's default. */
  rateLimit?: number;
  /** Burst above the sustained rate; unset or 0: the server's default. */
  burst?: number;
}

/** A new token and its secret, which the server never shows again. */
export interface CreatedToken {
  token: Token;
  /** The bearer secret: give it to a client as `token` (`authorization: Bearer <secret>`). */
  secret: string;
}

/** A namespace's storage quota and what the namespace stores now, in bytes. */
export type Quota = Plain<QuotaMessage>;

function roleValue(role: RoleName): Role {
  const value = ROLES[role];
  if (value === undefined) throw new TypeError(`unknown role ${String(role)}`);
  return value;
}

function tokenFromProto(message: TokenMessage): Token {
  const role = (Object.keys(ROLES) as RoleName[]).find((name) => ROLES[name] === message.role);
  return {
    name: message.name,
    role: role ?? "unspecified",
    namespaces: [...message.namespaces],
    createTime: fromTimestamp(message.createTime),
    expireTime: fromTimestamp(message.expireTime),
    revokeTime: fromTimestamp(message.revokeTime),
    rateLimit: message.rateLimit,
    burst: message.burst,
    createdBy: message.createdBy,
  };
}

/** The server's bearer tokens: `client.admin.tokens`. */
export class Tokens {
  constructor(private readonly connection: Connection) {}

  private get service() {
    return this.connection.client(AdminService);
  }

  /**
   * Create a token and return it with its secret, shown this once. Never retried
   * (a second attempt would find the name taken and the secret lost). Throws
   * AlreadyExistsError when the name is taken, InvalidArgumentError for a bad
   * name, namespace or ttl, PermissionDeniedError without an admin token for "*".
   */
  async create(spec: NewToken, options: CallOptions = {}): Promise<CreatedToken> {
    const request = {
      name: spec.name,
      role: roleValue(spec.role),
      namespaces: spec.namespaces,
      ttl: toDuration(spec.ttlMs, "ttlMs"),
      rateLimit: spec.rateLimit ?? 0,
      burst: spec.burst ?? 0,
    };
    const response = await this.connection.unary(
      (call) => this.service.createToken(request, call),
      { idempotent: false },
      options,
    );
    if (response.token === undefined) throw new TypeError("CreateToken answered without the token");
    return { token: tokenFromProto(response.token), secret: response.secret };
  }

  /** Iterate over the active tokens by name (with `showInactive`, revoked and expired ones too). */
  list(
    options: CallOptions & { showInactive?: boolean; pageSize?: number } = {},
  ): AsyncGenerator<Token, void, undefined> {
    return paginate(async (pageToken) => {
      const request = {
        pageSize: options.pageSize ?? 0,
        pageToken,
        showInactive: options.showInactive ?? false,
      };
      const response = await this.connection.unary(
        (call) => this.service.listTokens(request, call),
        { idempotent: true },
        options,
      );
      return { items: response.tokens.map(tokenFromProto), nextPageToken: response.nextPageToken };
    });
  }

  /**
   * Revoke a token: every server refuses it within a second. Revoking a revoked
   * token returns it unchanged. Throws NotFoundError when no token has the name.
   */
  async revoke(name: string, options: CallOptions = {}): Promise<Token> {
    const response = await this.connection.unary(
      (call) => this.service.revokeToken({ name }, call),
      { idempotent: true },
      options,
    );
    return tokenFromProto(response);
  }
}

/** Storage quotas: `client.admin.quotas`, of the client's namespace unless a call says otherwise. */
export class Quotas {
  constructor(
    private readonly connection: Connection,
    /** The namespace. */
    readonly namespace: string,
  ) {}

  private get service() {
    return this.connection.client(AdminService);
  }

  /**
   * Set the namespace's quota: the most bytes of record data, transcript entries
   * and artifacts (as stored) it may hold together; 0 removes it. A write that
   * would pass it then fails with ResourceExhaustedError (`quotaViolations`) and
   * writes nothing. Resolves to the quota and what the namespace stores now.
   */
  async set(maxBytes: number, options: CallOptions = {}): Promise<Quota> {
    if (!Number.isSafeInteger(maxBytes)) throw new TypeError("maxBytes must be an integer");
    const request = { namespace: this.namespace, maxBytes: BigInt(maxBytes) };
    const response = await this.connection.unary(
      (call) => this.service.setQuota(request, call),
      { idempotent: true },
      options,
    );
    return plain(response);
  }

  /** The namespace's quota and what it stores, or undefined when it has none. */
  async get(options: CallOptions = {}): Promise<Quota | undefined> {
    const [quota] = await this.fetch(this.namespace, options);
    return quota;
  }

  /** Every namespace's quota, by namespace (needs an admin token for "*"). */
  async list(options: CallOptions = {}): Promise<Quota[]> {
    return this.fetch("", options);
  }

  private async fetch(namespace: string, options: CallOptions): Promise<Quota[]> {
    const response = await this.connection.unary(
      (call) => this.service.listQuotas({ namespace }, call),
      { idempotent: true },
      options,
    );
    return response.quotas.map(plain);
  }
}
