/**
 * The client's own logic, against a stand-in gRPC server (support/fake.ts):
 * error details decoded from grpc-status-details-bin into the StrataError
 * classes (also the reasons a real server rarely sends), retries, metadata and
 * deadlines. Needs no Strata server; TLS is tested against real servers
 * (tls.test.ts). Also the package's shape, read from src/: no import circle.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { after, describe, test } from "node:test";
import {
  AbortedError,
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  LeaseLostError,
  NotFoundError,
  ResourceExhaustedError,
  SeqMismatchError,
  StrataClient,
  StrataError,
  TranscriptSealedError,
  UnavailableError,
  VersionConflictError,
  newRequestId,
} from "@strata/client";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  QuotaFailureSchema,
  RetryInfoSchema,
} from "@strata/client/gen/google/rpc/error_details_pb";
import { RecordSchema } from "@strata/client/gen/strata/v1/records_pb";
import { type Answer, FakeServer } from "./support/fake.js";
import { rejection } from "./support/env.js";

const ABORTED = 10;
const UNAVAILABLE = 14;
const FAILED_PRECONDITION = 9;
const RESOURCE_EXHAUSTED = 8;
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;

const RECORD = toBinary(
  RecordSchema,
  create(RecordSchema, { namespace: "n", collection: "c", id: "r", version: 3n, data: { a: 1 } }),
);

function info(reason: string, metadata: Record<string, string> = {}) {
  return { desc: ErrorInfoSchema, value: { reason, domain: "strata.v1", metadata } };
}

/** A fake answering every call with `answer`, and a client of it (both closed after the test). */
async function fake(
  answer: (attempt: number) => Answer,
  options: ConstructorParameters<typeof StrataClient>[0] = {},
) {
  const server = new FakeServer((_call, attempt) => answer(attempt));
  const target = await server.listen();
  const client = new StrataClient({
    target,
    namespace: "n",
    retry: { initialBackoffMs: 1, maxBackoffMs: 5 },
    ...options,
  });
  after(async () => {
    client.close();
    await server.close();
  });
  return { server, client };
}

describe("errors decoded from the status details", () => {
  const cases: [string, Answer, new (...args: never[]) => StrataError, (e: StrataError) => void][] = [
    [
      "VERSION_CONFLICT with its current version",
      { code: ABORTED, message: "stale", details: [info("VERSION_CONFLICT", { current_version: "7" })] },
      VersionConflictError,
      (e) => assert.equal((e as VersionConflictError).currentVersion, 7),
    ],
    [
      "CONCURRENT_MODIFICATION is a plain AbortedError",
      { code: ABORTED, message: "collided", details: [info("CONCURRENT_MODIFICATION")] },
      AbortedError,
      (e) => assert.ok(!(e instanceof VersionConflictError)),
    ],
    [
      "LEASE_LOST",
      { code: FAILED_PRECONDITION, message: "lost", details: [info("LEASE_LOST")] },
      LeaseLostError,
      (e) => assert.ok(e instanceof FailedPreconditionError),
    ],
    [
      "SEQ_MISMATCH with the next seq",
      { code: FAILED_PRECONDITION, message: "moved", details: [info("SEQ_MISMATCH", { next_seq: "12" })] },
      SeqMismatchError,
      (e) => assert.equal((e as SeqMismatchError).nextSeq, 12),
    ],
    [
      "TRANSCRIPT_SEALED",
      { code: FAILED_PRECONDITION, message: "sealed", details: [info("TRANSCRIPT_SEALED")] },
      TranscriptSealedError,
      () => undefined,
    ],
    [
      "BACKEND_UNAVAILABLE",
      { code: UNAVAILABLE, message: "database down", details: [info("BACKEND_UNAVAILABLE")] },
      UnavailableError,
      (e) => assert.equal(e.reason, "BACKEND_UNAVAILABLE"),
    ],
    [
      "BadRequest field violations",
      {
        code: INVALID_ARGUMENT,
        message: "bad",
        details: [
          info("INVALID_ARGUMENT"),
          {
            desc: BadRequestSchema,
            value: { fieldViolations: [{ field: "collection", description: "must start with a letter" }] },
          },
        ],
      },
      InvalidArgumentError,
      (e) =>
        assert.deepEqual(e.fieldViolations, [{ field: "collection", description: "must start with a letter" }]),
    ],
    [
      "QuotaFailure and RetryInfo",
      {
        code: RESOURCE_EXHAUSTED,
        message: "over quota",
        details: [
          info("QUOTA_EXCEEDED"),
          { desc: QuotaFailureSchema, value: { violations: [{ subject: "namespace:n", description: "full" }] } },
          { desc: RetryInfoSchema, value: { retryDelay: { seconds: 2n, nanos: 500_000_000 } } },
        ],
      },
      ResourceExhaustedError,
      (e) => {
        assert.deepEqual(e.quotaViolations, [{ subject: "namespace:n", description: "full" }]);
        assert.equal(e.retryDelayMs, 2500);
      },
    ],
    [
      "a commit's failing write index",
      { code: 6, message: "taken", details: [info("ALREADY_EXISTS", { write_index: "4" })] },
      AlreadyExistsError,
      (e) => assert.equal(e.writeIndex, 4),
    ],
    [
      "a reason on another code than its own goes by the code",
      { code: NOT_FOUND, message: "odd", details: [info("LEASE_LOST")] },
      NotFoundError,
      (e) => assert.ok(!(e instanceof LeaseLostError)),
    ],
    [
      "no details: by the code alone",
      { code: NOT_FOUND, message: "" },
      NotFoundError,
      (e) => {
        assert.equal(e.reason, "");
        assert.equal(e.message, "NOT_FOUND");
      },
    ],
  ];
  for (const [name, answer, type, check] of cases) {
    test(name, async () => {
      const { client } = await fake(() => answer, { retry: { maxAttempts: 1 } });
      const error = await rejection(client.records("c").get("r"), type);
      assert.ok(error instanceof StrataError);
      if ("code" in answer && answer.message) assert.equal(error.message, answer.message);
      assert.equal(error.name, type.name);
      check(error);
    });
  }
});

describe("retries", () => {
  const unavailable: Answer = { code: UNAVAILABLE, message: "down" };

  test("a read is retried after UNAVAILABLE until it succeeds", async () => {
    const { client, server } = await fake((attempt) => (attempt < 3 ? unavailable : { ok: RECORD }));
    const record = await client.records("c").get("r");
    assert.equal(record.version, 3);
    assert.deepEqual(record.data, { a: 1 });
    assert.equal(server.calls.length, 3);
  });

  test("...and gives up with UnavailableError after maxAttempts", async () => {
    const { client, server } = await fake(() => unavailable, {
      retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 },
    });
    await rejection(client.records("c").get("r"), UnavailableError);
    assert.equal(server.calls.length, 3);
  });

  test("a write without a requestId is not retried; with one it is", async () => {
    const { client, server } = await fake((attempt) => (attempt < 2 ? unavailable : { ok: RECORD }));
    await rejection(client.records("c").update("r", { data: {} }), UnavailableError);
    assert.equal(server.calls.length, 1);
    await client.records("c").create({ data: {}, requestId: newRequestId() });
    assert.equal(server.calls.filter((c) => c.method.endsWith("/CreateRecord")).length, 2);
  });

  test("CONCURRENT_MODIFICATION is retried even for a write; other errors never", async () => {
    const { client, server } = await fake((attempt) =>
      attempt < 2 ? { code: ABORTED, message: "collided", details: [info("CONCURRENT_MODIFICATION")] } : { ok: RECORD },
    );
    await client.records("c").update("r", { data: {} });
    assert.equal(server.calls.length, 2);

    const conflict = await fake(() => ({ code: ABORTED, message: "stale", details: [info("VERSION_CONFLICT")] }));
    await rejection(conflict.client.records("c").get("r"), VersionConflictError);
    assert.equal(conflict.server.calls.length, 1);
  });

  test("maxAttempts 1 turns retries off; nonsense policies are refused", async () => {
    const { client, server } = await fake(() => unavailable, { retry: { maxAttempts: 1 } });
    await rejection(client.records("c").get("r"), UnavailableError);
    assert.equal(server.calls.length, 1);
    assert.throws(() => new StrataClient({ retry: { maxAttempts: 0 } }), RangeError);
    assert.throws(() => new StrataClient({ retry: { initialBackoffMs: 10, maxBackoffMs: 5 } }), RangeError);
    assert.throws(() => new StrataClient({ retry: { jitter: 2 } }), RangeError);
    assert.throws(() => new StrataClient({ timeoutMs: 0 }), RangeError);
  });

  test("an unreachable server is UNAVAILABLE after the retries", async () => {
    const closed = createServer();
    await new Promise<void>((done) => closed.listen(0, "127.0.0.1", done));
    const port = (closed.address() as { port: number }).port;
    await new Promise((done) => closed.close(done));
    const client = new StrataClient({ target: `127.0.0.1:${port}`, retry: { initialBackoffMs: 1, maxBackoffMs: 2 } });
    const error = await rejection(client.records("c").get("r"), UnavailableError);
    assert.equal(error.code, "UNAVAILABLE");
    client.close();
  });
});

describe("metadata and deadlines", () => {
  test("token, actor and headers go with every call; the deadline is the timeout plus a long poll's wait", async () => {
    const { client, server } = await fake(() => ({ ok: RECORD }), {
      token: "s3cret",
      actor: "alice",
      headers: { "x-custom": "yes" },
      timeoutMs: 2_000,
    });
    await client.records("c").get("r");
    await client.records("c").get("r", { timeoutMs: 500 });
    await client.queue("q").lease({ waitMs: 3_000 }).catch(() => undefined);
    const [get, shorter, lease] = server.calls;
    assert.equal(get?.headers["authorization"], "Bearer s3cret");
    assert.equal(get?.headers["x-strata-actor"], "alice");
    assert.equal(get?.headers["x-custom"], "yes");
    assert.equal(get?.headers["grpc-timeout"], "2000m");
    assert.equal(shorter?.headers["grpc-timeout"], "500m");
    assert.equal(lease?.method, "/strata.v1.QueueService/LeaseJobs");
    assert.equal(lease?.headers["grpc-timeout"], "5000m");
    assert.equal(lease?.headers["authorization"], "Bearer s3cret");
  });
});

describe("targets", () => {
  test("tls with an http:// target is refused before any call", () => {
    assert.throws(() => new StrataClient({ target: "http://127.0.0.1:1", tls: true }), TypeError);
  });
});

describe("modules", () => {
  test("src/ has no import circle, counting type-only imports", () => {
    const src = new URL("../../src/", import.meta.url);
    const imports = new Map<string, string[]>();
    for (const file of readdirSync(src).filter((name) => name.endsWith(".ts"))) {
      const text = readFileSync(new URL(file, src), "utf8");
      const local = [...text.matchAll(/(?:from\s+|import\s*\(\s*)"\.\/([\w-]+)\.js"/g)];
      imports.set(file.replace(/\.ts$/, ""), local.map((match) => match[1] as string));
    }
    assert.ok(imports.get("queue")?.includes("jobs"), "the import scan reads nothing");
    const done = new Set<string>();
    const visit = (module: string, path: string[]): void => {
      const seen = path.indexOf(module);
      assert.equal(seen, -1, `import circle: ${[...path.slice(seen), module].join(" -> ")}`);
      if (done.has(module)) return;
      for (const imported of imports.get(module) ?? []) visit(imported, [...path, module]);
      done.add(module);
    };
    for (const module of imports.keys()) visit(module, []);
  });
});
