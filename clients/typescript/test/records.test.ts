/** Records through the Node client: every method, its options and its errors. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  AlreadyExistsError,
  CancelledError,
  CursorExpiredError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  VersionConflictError,
  newRequestId,
} from "@strata/client";
import { setTimeout as delay } from "node:timers/promises";
import { collect, eventually, newClient, rejection, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());

describe("records", () => {
  test("create, get, update, delete", async () => {
    const notes = client.records(unique("c"));
    const made = await notes.create({ recordId: "n1", data: { title: "hello", n: 1 } });
    assert.equal(made.id, "n1");
    assert.equal(made.version, 1);
    assert.equal(made.namespace, client.namespace);
    assert.equal(made.collection, notes.collection);
    assert.ok(made.createTime instanceof Date);
    assert.equal(made.expireTime, undefined);

    const got = await notes.get("n1");
    assert.deepEqual(got.data, { title: "hello", n: 1 });

    const replaced = await notes.update("n1", { data: { title: "bye" }, expectedVersion: got.version });
    assert.equal(replaced.version, 2);
    assert.deepEqual(replaced.data, { title: "bye" });

    const merged = await notes.update("n1", {
      data: { extra: { deep: true } },
      updateMask: ["data.extra"],
    });
    assert.deepEqual(merged.data, { title: "bye", extra: { deep: true } });

    await notes.delete("n1", { expectedVersion: merged.version });
    await rejection(notes.get("n1"), NotFoundError);
    await notes.delete("n1", { allowMissing: true });
  });

  test("owners: set on create, kept or changed on update, filtered", async () => {
    const notes = client.records(unique("c"));
    const made = await notes.create({ recordId: "o1", data: {}, owner: "ada" });
    assert.equal(made.owner, "ada");
    assert.equal((await notes.create({ recordId: "o2", data: {} })).owner, "");
    assert.equal((await notes.update("o1", { data: { n: 1 } })).owner, "ada");
    assert.equal((await notes.update("o1", { data: { n: 2 }, owner: "bob" })).owner, "bob");
    assert.equal((await notes.get("o1")).owner, "bob");
    const owned = await collect(notes.list({ filter: 'owner = "bob"' }));
    assert.deepEqual(owned.map((record) => record.id), ["o1"]);
    assert.equal((await notes.update("o1", { data: {}, owner: "" })).owner, "");
    await rejection(notes.create({ data: {}, owner: "x".repeat(257) }), InvalidArgumentError);
  });

  test("a record's children: a delete refuses while they exist, cascade removes them", async () => {
    const runs = client.records(unique("c"));
    await runs.create({ recordId: "r1", data: {} });
    const parent = { collection: runs.collection, id: "r1" };
    const chat = await client.transcripts.create({ parent });
    assert.deepEqual(chat.parent, parent);
    const listed = await collect(client.transcripts.list({ parent }));
    assert.deepEqual(listed.map((t) => t.id), [chat.id]);
    const refused = await rejection(runs.delete("r1"), FailedPreconditionError);
    assert.equal(refused.reason, "HAS_CHILDREN");
    await runs.delete("r1", { cascade: true });
    await rejection(client.transcripts.get(chat.id), NotFoundError);
  });

  test("the server chooses an id, and expiry hides a record", async () => {
    const notes = client.records(unique("c"));
    const made = await notes.create({ data: { a: 1 } });
    assert.ok(made.id.length > 0);
    const expireTime = new Date(Date.now() + 3_600_000);
    const expiring = await notes.create({ data: {}, expireTime });
    assert.equal(expiring.expireTime?.getTime(), expireTime.getTime());
    const soon = await notes.create({ data: {}, expireTime: new Date(Date.now() + 1_000) });
    await eventually(
      () => notes.get(soon.id).then(() => false, (error) => error instanceof NotFoundError),
      10_000,
      "the record's expiry",
    );
  });

  test("upsert with allowMissing", async () => {
    const notes = client.records(unique("c"));
    const made = await notes.update("u1", { data: { x: 1 }, allowMissing: true });
    assert.equal(made.version, 1);
  });

  test("batchGet returns the records in order and names the missing", async () => {
    const notes = client.records(unique("c"));
    await notes.create({ recordId: "a", data: { v: "a" } });
    await notes.create({ recordId: "b", data: { v: "b" } });
    const { records, missingIds } = await notes.batchGet(["b", "zzz", "a"]);
    assert.deepEqual(records.map((r) => r.id), ["b", "a"]);
    assert.deepEqual(missingIds, ["zzz"]);
  });

  test("list walks every page, filtered and ordered; count agrees", async () => {
    const notes = client.records(unique("c"));
    for (let i = 0; i < 23; i++) {
      await notes.create({ recordId: `r${String(i).padStart(2, "0")}`, data: { rank: i, even: i % 2 === 0 } });
    }
    const all = await collect(notes.list({ pageSize: 5 }));
    assert.equal(all.length, 23);
    const evens = await collect(notes.list({ filter: "data.even = true", orderBy: "data.rank desc", pageSize: 4 }));
    assert.deepEqual(evens.map((r) => r.data["rank"]), [22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0]);
    assert.equal(await notes.count(), 23);
    assert.equal(await notes.count({ filter: "data.rank >= 20" }), 3);
  });

  test("search finds words in string values, best first", async () => {
    const notes = client.records(unique("c"));
    await notes.create({ recordId: "p", data: { text: "printer on fire" } });
    await notes.create({ recordId: "q", data: { text: "coffee machine" } });
    const hits = await collect(notes.search("printer"));
    assert.deepEqual(hits.map((hit) => hit.record.id), ["p"]);
    assert.equal(typeof hits[0]?.score, "number");
  });

  test("a create with a requestId is applied once", async () => {
    const notes = client.records(unique("c"));
    const requestId = newRequestId();
    const first = await notes.create({ data: { n: 1 }, requestId });
    const again = await notes.create({ data: { n: 1 }, requestId });
    assert.equal(again.id, first.id);
    assert.equal(await notes.count(), 1);
  });

  test("errors are typed: AlreadyExists, VersionConflict with currentVersion, InvalidArgument with fields", async () => {
    const notes = client.records(unique("c"));
    await notes.create({ recordId: "x", data: {} });
    const exists = await rejection(notes.create({ recordId: "x", data: {} }), AlreadyExistsError);
    assert.equal(exists.code, "ALREADY_EXISTS");
    assert.equal(exists.reason, "ALREADY_EXISTS");

    await notes.update("x", { data: { v: 2 } });
    const conflict = await rejection(
      notes.update("x", { data: {}, expectedVersion: 1 }),
      VersionConflictError,
    );
    assert.equal(conflict.code, "ABORTED");
    assert.equal(conflict.reason, "VERSION_CONFLICT");
    assert.equal(conflict.currentVersion, 2);
    const onDelete = await rejection(notes.delete("x", { expectedVersion: 7 }), VersionConflictError);
    assert.equal(onDelete.currentVersion, 2);

    const bad = await rejection(client.records("1-not-a-collection").get("x"), InvalidArgumentError);
    assert.equal(bad.code, "INVALID_ARGUMENT");
    assert.deepEqual(bad.fieldViolations.map((v) => v.field), ["collection"]);
    assert.ok(bad.fieldViolations[0]?.description);

    const badFilter = await rejection(collect(notes.list({ filter: "data.x = = 1" })), InvalidArgumentError);
    assert.ok(badFilter.message.length > 0);

    const missing = await rejection(notes.get("nope"), NotFoundError);
    assert.equal(missing.reason, "NOT_FOUND");
  });

  test("data over the server's limit is RESOURCE_EXHAUSTED with reason TOO_LARGE", async () => {
    const notes = client.records(unique("c"));
    const error = await rejection(
      notes.create({ data: { big: "x".repeat(1100 * 1024) } }),
      ResourceExhaustedError,
    );
    assert.equal(error.reason, "TOO_LARGE");
    assert.ok(Number(error.metadata["limit"]) > 0);
  });

  test("a call's AbortSignal cancels it, and its deadline bounds it", async () => {
    const notes = client.records(unique("c"));
    const aborted = new AbortController();
    aborted.abort();
    const cancelled = await rejection(notes.get("x", { signal: aborted.signal }), CancelledError);
    assert.equal(cancelled.code, "CANCELLED");
    // A long poll's deadline is its wait plus the timeout: this one waits out its 1.5 s.
    const queue = client.queue(unique("q"));
    assert.deepEqual(await queue.lease({ waitMs: 1_500, timeoutMs: 300 }), []);
    // A follow of an idle transcript never ends by itself: its deadline ends it.
    const id = unique("t");
    await client.transcripts.create({ transcriptId: id });
    const late = await rejection(
      collect(client.transcripts.read(id, { follow: true, timeoutMs: 300 })),
      DeadlineExceededError,
    );
    assert.equal(late.code, "DEADLINE_EXCEEDED");
  });

  test("watch delivers changes in order and resumes from a cursor", async () => {
    const notes = client.records(unique("c"));
    const stop = new AbortController();
    const watch = notes.watch({ signal: stop.signal });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const change of watch) {
        seen.push(`${change.kind}:${change.recordId}:${change.version}`);
        if (seen.length === 3) break;
      }
    })();
    // The watch starts "from now": wait for its stream's start (its first cursor).
    await eventually(async () => watch.cursor !== "", 10_000, "the watch's start");
    await notes.create({ recordId: "w", data: { n: 1 } });
    await notes.update("w", { data: { n: 2 } });
    await notes.delete("w");
    await reading;
    assert.deepEqual(seen, ["created:w:1", "updated:w:2", "deleted:w:2"]);

    const cursor = watch.cursor;
    await notes.create({ recordId: "later", data: {} });
    const resumed = notes.watch({ fromCursor: cursor, signal: stop.signal });
    for await (const change of resumed) {
      assert.equal(change.recordId, "later");
      assert.equal(change.kind, "created");
      assert.equal(change.record?.id, "later");
      break;
    }
    stop.abort();
  });

  test("a watch from a cursor the audit log's retention purged past throws CursorExpiredError", async () => {
    // A namespace of its own: its audit log is purged down to the last second.
    const own = newClient();
    try {
      const notes = own.records(unique("c"));
      const stop = new AbortController();
      const first = notes.watch({ signal: stop.signal });
      const seen: string[] = [];
      const reading = (async () => {
        for await (const change of first) {
          seen.push(change.cursor);
          if (seen.length === 2) break;
        }
      })();
      await eventually(async () => first.cursor !== "", 10_000, "the watch's start");
      const start = first.cursor;
      await notes.create({ recordId: "old1", data: {} });
      await notes.create({ recordId: "old2", data: {} });
      await reading;
      await delay(1_200);
      await notes.create({ recordId: "new", data: {} });
      await own.admin.setRetentionPolicy({ target: "audit_log", maxAgeMs: 1_000 });
      await own.admin.cleanup();

      // Thrown at once, not retried: the same cursor can never resume.
      const expired = notes.watch({ fromCursor: start, signal: stop.signal, reconnectForMs: 60_000 });
      const error = await rejection(collect(expired), CursorExpiredError);
      assert.equal(error.code, "FAILED_PRECONDITION");
      assert.equal(error.reason, "CURSOR_EXPIRED");
      assert.equal(error.horizon, seen[1]);
      assert.equal(expired.reconnects, 0);

      // From the horizon on, nothing was purged: the watch resumes with no gap.
      const resumed = notes.watch({ fromCursor: error.horizon, signal: stop.signal });
      for await (const change of resumed) {
        assert.equal(change.recordId, "new");
        break;
      }
      stop.abort();
    } finally {
      own.close();
    }
  });
});
