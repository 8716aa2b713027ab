/**
 * The client's own logic where a real server cannot show it, against a
 * stand-in gRPC server (support/fake.ts): statuses no Strata server sends (a
 * reason under another code than its own, no details at all, as from a proxy)
 * and the metadata and deadline headers the client sends, which a server does
 * not echo. Also what needs no server: retry policies refused, an unreachable
 * port, the package's shape (no import circle).
 *
 * Every reason a Strata server sends, and every retry rule, is tested against
 * real servers instead: records, transcripts, queue, commit, cache, admin and
 * artifacts tests (each reason the protos document), access.test.ts (ROLE_REQUIRED,
 * NAMESPACE_NOT_ALLOWED, RATE_LIMITED, QUOTA_EXCEEDED), faults.test.ts
 * (IDLE_TIMEOUT, DATA_LOSS, BACKEND_UNAVAILABLE and CONCURRENT_MODIFICATION, with
 * the attempts the server counted) and restart.test.ts (retries across a restart).
 */
import { create, toBinary } from "@bufbuild/protobuf";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { after, describe, test } from "node:test";
import {
  LeaseLostError,
  NotFoundError,
  StrataClient,
  StrataError,
  UnavailableError,
} from "@strata/client";
import { ErrorInfoSchema } from "@strata/client/gen/google/rpc/error_details_pb";
import { RecordSchema } from "@strata/client/gen/strata/v1/records_pb";
import { type Answer, FakeServer } from "./support/fake.js";
import { rejection } from "./support/env.js";

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

describe("statuses no Strata server sends", () => {
  const cases: [string, Answer, new (...args: never[]) => StrataError, (e: StrataError) => void][] = [
    [
      "a reason on another code than its own goes by the code",
      { code: NOT_FOUND, message: "odd", details: [info("LEASE_LOST")] },
      NotFoundError,
      (e) => {
        assert.ok(!(e instanceof LeaseLostError));
        assert.equal(e.reason, "LEASE_LOST");
      },
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
  test("nonsense policies are refused", () => {
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
