/**
 * The error reasons only a disturbed server shows, each provoked for real on a
 * server of this file's own (support/server.ts) of the shape under test:
 * IDLE_TIMEOUT (a stalled upload or import, against 1 s idle limits), an
 * import's TOO_LARGE (against a 1 MiB limit), DATA_LOSS (a blob damaged in the
 * store), BACKEND_UNAVAILABLE (the
 * production shape's Redis stopped; the embedded shape's SQLite file locked by
 * another process) and CONCURRENT_MODIFICATION (PostgreSQL: another
 * transaction holds the record). Also how the client retries those, counted
 * by the server itself (its strata_rpcs metric): the attempts it really got.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import {
  AbortedError,
  DataLossError,
  DeadlineExceededError,
  ResourceExhaustedError,
  StrataClient,
  UnavailableError,
  VersionConflictError,
  type RetryPolicy,
  newRequestId,
} from "@strata/client";
import { type Damage, OwnRedis, damageBlob, holdTransaction } from "./support/backends.js";
import { SHAPE, collect, eventually, rejection, unique } from "./support/env.js";
import { OwnServer } from "./support/server.js";

const PRODUCTION = SHAPE === "postgres";
/** This file's server takes archives of at most this many bytes. */
const IMPORT_LIMIT = 1 << 20;
/** The production shape's Redis, of this file's own so that it can be stopped. */
const redis = PRODUCTION ? new OwnRedis() : undefined;
let server: OwnServer;
let client: StrataClient;

before(async () => {
  await redis?.start();
  server = new OwnServer({
    shapeBlobs: true,
    metrics: true,
    env: {
      STRATA_UPLOAD_IDLE_TIMEOUT_SECONDS: "1",
      STRATA_IMPORT_IDLE_TIMEOUT_SECONDS: "1",
      STRATA_MAX_IMPORT_BYTES: String(IMPORT_LIMIT),
      ...(redis ? { STRATA_REDIS_URL: redis.url } : {}),
    },
    // PostgreSQL reports a collision only when a transaction gives up on another
    // (a lock wait past lock_timeout, a deadlock, a serialization failure); this
    // server's sessions stop waiting for a row lock after 100 ms, as an operator
    // may have them do.
    pgOptions: "-c lock_timeout=100",
  });
  await server.start();
  client = new StrataClient({ target: server.target, namespace: unique("ns") });
});
after(async () => {
  client?.close();
  await server?.close();
  await redis?.close();
});

/** A client of the server in the same namespace with this retry policy, closed after the test. */
function retrying(retry: Partial<RetryPolicy>): StrataClient {
  const own = new StrataClient({ target: server.target, namespace: client.namespace, retry });
  after(() => own.close());
  return own;
}

/** An async iterable of bytes that yields `first` and then waits until `release` is called. */
function stalling(first: Uint8Array): { source: AsyncIterable<Uint8Array>; release: () => void; pulled: () => number } {
  let release: () => void = () => undefined;
  const released = new Promise<void>((done) => (release = done));
  let pulls = 0;
  async function* source(): AsyncGenerator<Uint8Array> {
    pulls += 1;
    yield first;
    pulls += 1;
    await released;
  }
  return { source: source(), release, pulled: () => pulls };
}

/** A Writable that throws away what it is given. */
function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

describe("IDLE_TIMEOUT: a client stream that stalls past the server's idle limit", () => {
  test("an upload: DEADLINE_EXCEEDED with reason IDLE_TIMEOUT, and nothing is stored", async () => {
    const owner = unique("owner");
    const stall = stalling(randomBytes(1 << 20));
    try {
      const error = await rejection(
        client.artifacts.upload(stall.source, { owner, kind: "blob", name: "stalled.bin" }),
        DeadlineExceededError,
      );
      assert.equal(error.code, "DEADLINE_EXCEEDED");
      assert.equal(error.reason, "IDLE_TIMEOUT");
      assert.equal(stall.pulled(), 2, "the upload waited for the source's second chunk");
    } finally {
      stall.release();
    }
    assert.deepEqual(await collect(client.artifacts.list({ owner })), []);
  });

  test("an import: DEADLINE_EXCEEDED with reason IDLE_TIMEOUT, and nothing is imported", async () => {
    const source = client.withNamespace(unique("ns"));
    await source.records("notes").create({ recordId: "n1", data: { text: "x".repeat(2000) } });
    const parts: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        parts.push(chunk);
        done();
      },
    });
    await source.admin.export(sink);
    const archive = Buffer.concat(parts);
    const stall = stalling(archive.subarray(0, Math.floor(archive.length / 2)));
    const target = client.withNamespace(unique("ns"));
    try {
      const error = await rejection(
        target.admin.import(stall.source, { size: archive.length }),
        DeadlineExceededError,
      );
      assert.equal(error.reason, "IDLE_TIMEOUT");
    } finally {
      stall.release();
    }
    assert.equal(await target.records("notes").count(), 0);
    // The whole archive, sent without a pause, imports.
    await target.admin.import(archive);
    assert.deepEqual((await target.records("notes").get("n1")).data, { text: "x".repeat(2000) });
  });
});

test("an import past the server's STRATA_MAX_IMPORT_BYTES: RESOURCE_EXHAUSTED with reason TOO_LARGE", async () => {
  const target = client.withNamespace(unique("ns"));
  const oversized = randomBytes(IMPORT_LIMIT + 1);
  const error = await rejection(target.admin.import(oversized), ResourceExhaustedError);
  assert.equal(error.reason, "TOO_LARGE");
  assert.equal(await target.records("notes").count(), 0);
});

describe("DATA_LOSS: an artifact whose stored bytes were damaged", () => {
  /** A fresh artifact of random (incompressible) bytes, with its blob damaged `how`. */
  async function damaged(how: Damage) {
    const artifacts = client.withNamespace(unique("ns")).artifacts;
    const artifact = await artifacts.upload(randomBytes(600 * 1024), { owner: "o", kind: "blob" });
    await damageBlob(server, artifact, how);
    return { artifacts, artifact };
  }

  test("bytes that are gone: the server says DATA_LOSS (reason BLOB_MISSING)", async () => {
    const { artifacts, artifact } = await damaged("remove");
    const error = await rejection(artifacts.download(artifact.id, discard()), DataLossError);
    assert.equal(error.code, "DATA_LOSS");
    assert.equal(error.reason, "BLOB_MISSING");
    // The metadata is still there; only the content is lost.
    assert.equal((await artifacts.get(artifact.id)).sha256, artifact.sha256);
  });

  test("bytes cut short: DATA_LOSS, from the server or the client's own size check", async () => {
    const { artifacts, artifact } = await damaged("truncate");
    const error = await rejection(artifacts.download(artifact.id, discard()), DataLossError);
    assert.equal(error.code, "DATA_LOSS");
    if (server.s3 === undefined || error.reason !== "") {
      // The disk store checks a blob's length as it reads it.
      assert.equal(error.reason, "BLOB_MISSING");
    } else {
      // The S3 store streams a short object as it is: the client's check catches it.
      assert.match(error.message, /\(307200 of 614400 bytes\)/);
    }
  });

  test("bytes changed in place: the client's sha256 check says DATA_LOSS", async () => {
    const { artifacts, artifact } = await damaged("overwrite");
    const error = await rejection(artifacts.download(artifact.id, discard()), DataLossError);
    assert.equal(error.code, "DATA_LOSS");
    assert.match(error.message, /do not match its sha256/);
  });

  test("an export naming a blob that is gone (BLOB_MISSING) or changed (DATA_LOSS with its sha256)", async () => {
    const gone = client.withNamespace(unique("ns"));
    const removed = await gone.artifacts.upload(randomBytes(100 * 1024), { owner: "o", kind: "blob" });
    await damageBlob(server, removed, "remove");
    const missing = await rejection(gone.admin.export(discard()), DataLossError);
    assert.equal(missing.code, "DATA_LOSS");
    assert.equal(missing.reason, "BLOB_MISSING");

    const changed = client.withNamespace(unique("ns"));
    const overwritten = await changed.artifacts.upload(randomBytes(100 * 1024), { owner: "o", kind: "blob" });
    await damageBlob(server, overwritten, "overwrite");
    const mismatch = await rejection(changed.admin.export(discard()), DataLossError);
    assert.equal(mismatch.reason, "DATA_LOSS");
    assert.deepEqual(mismatch.metadata, { sha256: overwritten.sha256 });
  });
});

describe("BACKEND_UNAVAILABLE: a backend the server depends on is out", () => {
  test("production: Redis stopped; the cache is UNAVAILABLE, reads retried until Redis is back", { skip: !PRODUCTION && "the embedded shape has no Redis" }, async () => {
    const cache = client.cache;
    await cache.set("k", "v");
    await redis?.stop();
    try {
      const once = retrying({ maxAttempts: 3, initialBackoffMs: 20, maxBackoffMs: 50 });
      const before = await server.rpcs("CacheService/Get", "UNAVAILABLE");
      const error = await rejection(once.cache.get("k"), UnavailableError);
      assert.equal(error.code, "UNAVAILABLE");
      assert.equal(error.reason, "BACKEND_UNAVAILABLE");
      assert.equal((await server.rpcs("CacheService/Get", "UNAVAILABLE")) - before, 3, "attempts sent");
      const single = retrying({ maxAttempts: 1 });
      await rejection(single.cache.get("k"), UnavailableError);
      assert.equal((await server.rpcs("CacheService/Get", "UNAVAILABLE")) - before, 4, "maxAttempts 1: no retry");

      const patient = retrying({ maxAttempts: 200, initialBackoffMs: 50, maxBackoffMs: 200 });
      const waiting = patient.cache.get("k");
      const failed = await server.rpcs("CacheService/Get", "UNAVAILABLE");
      await eventually(async () => (await server.rpcs("CacheService/Get", "UNAVAILABLE")) > failed + 1, 15_000, "failed attempts");
      await redis?.start();
      // The restarted Redis is empty: the value is gone, the read answers.
      assert.equal(await waiting, undefined);
    } finally {
      await redis?.start();
    }
  });

  test("embedded: the SQLite file locked by another process; a write with a requestId is retried until it is free, one without is sent once", { skip: PRODUCTION && "the production shape's PostgreSQL is the session's, shared: its Redis is stopped instead" }, async () => {
    const notes = client.records(unique("c"));
    await notes.create({ recordId: "n1", data: { v: 1 } });
    const release = await holdTransaction(server.databaseUrl, ["BEGIN IMMEDIATE"]);
    let released = false;
    try {
      const sentBefore = await server.rpcs("RecordService/UpdateRecord", "UNAVAILABLE");
      const error = await rejection(notes.update("n1", { data: { v: 2 } }), UnavailableError);
      assert.equal(error.reason, "BACKEND_UNAVAILABLE");
      assert.equal((await server.rpcs("RecordService/UpdateRecord", "UNAVAILABLE")) - sentBefore, 1, "attempts sent");

      const patient = retrying({ maxAttempts: 20, initialBackoffMs: 50, maxBackoffMs: 200 });
      const failedBefore = await server.rpcs("RecordService/CreateRecord", "UNAVAILABLE");
      const creating = patient.records(notes.collection).create({ recordId: "n2", data: {}, requestId: newRequestId() });
      await eventually(
        async () => (await server.rpcs("RecordService/CreateRecord", "UNAVAILABLE")) > failedBefore,
        30_000,
        "a failed attempt",
      );
      await release();
      released = true;
      assert.equal((await creating).version, 1);
    } finally {
      if (!released) await release();
    }
    assert.deepEqual((await notes.get("n1")).data, { v: 1 });
    assert.equal(await notes.count(), 2);
  });
});

describe("CONCURRENT_MODIFICATION: writers that keep colliding", () => {
  test("another transaction holds the record: ABORTED with reason CONCURRENT_MODIFICATION, retried by the client even without a requestId", { skip: !PRODUCTION && "the embedded shape's one writer queues every write: writes never collide" }, async () => {
    const notes = client.records(unique("c"));
    await notes.create({ recordId: "n1", data: { v: 1 } });
    const lock =
      `SELECT 1 FROM records WHERE namespace = '${client.namespace}' ` +
      `AND collection = '${notes.collection}' AND id = 'n1' FOR UPDATE`;
    const release = await holdTransaction(server.databaseUrl, [lock]);
    let released = false;
    try {
      const twice = retrying({ maxAttempts: 2, initialBackoffMs: 20, maxBackoffMs: 50 });
      const before = await server.rpcs("RecordService/UpdateRecord", "ABORTED");
      const error = await rejection(twice.records(notes.collection).update("n1", { data: { v: 2 } }), AbortedError);
      assert.equal(error.code, "ABORTED");
      assert.equal(error.reason, "CONCURRENT_MODIFICATION");
      assert.ok(!(error instanceof VersionConflictError));
      assert.equal((await server.rpcs("RecordService/UpdateRecord", "ABORTED")) - before, 2, "attempts sent");

      const patient = retrying({ maxAttempts: 50, initialBackoffMs: 50, maxBackoffMs: 200 });
      const failed = await server.rpcs("RecordService/UpdateRecord", "ABORTED");
      const updating = patient.records(notes.collection).update("n1", { data: { v: 3 } });
      await eventually(async () => (await server.rpcs("RecordService/UpdateRecord", "ABORTED")) > failed, 30_000, "a collision");
      await release();
      released = true;
      assert.equal((await updating).version, 2);
    } finally {
      if (!released) await release();
    }
    assert.deepEqual((await notes.get("n1")).data, { v: 3 });

    // A stale expectedVersion is the caller's to resolve: sent once, never retried.
    const before = await server.rpcs("RecordService/UpdateRecord", "ABORTED");
    const stale = await rejection(notes.update("n1", { data: {}, expectedVersion: 1 }), VersionConflictError);
    assert.equal(stale.currentVersion, 2);
    assert.equal((await server.rpcs("RecordService/UpdateRecord", "ABORTED")) - before, 1);
  });
});
