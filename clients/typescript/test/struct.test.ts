/**
 * google.protobuf.Struct round trips: every JSON type comes back as it went in,
 * through records' data, jobs' payloads and results, and entries' data.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { JsonObject } from "@strata/client";
import { newClient, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());

const DOCUMENT: JsonObject = {
  string: "hello",
  empty_string: "",
  unicode: "héllo wörld — 你好, 🙂, tab\t, newline\n, \u2028 separator, \"quotes\" \\",
  "key with spaces & ünïcode 🔑": "keys too",
  integer: 42,
  negative: -7,
  zero: 0,
  fraction: 3.25,
  tiny: 5e-324,
  huge: 1.7976931348623157e308,
  max_safe_integer: Number.MAX_SAFE_INTEGER,
  min_safe_integer: Number.MIN_SAFE_INTEGER,
  beyond_safe_integer: 2 ** 60,
  true: true,
  false: false,
  null: null,
  empty_object: {},
  empty_array: [],
  array: ["a", 1, null, true, { nested: [1, [2, [3]]] }],
  nested: { level1: { level2: { level3: { value: "deep", list: [{ a: 1 }, { b: [null] }] } } } },
};

test("record data: every JSON type round-trips, and comes back as plain objects", async () => {
  const records = client.records(unique("c"));
  const made = await records.create({ recordId: "doc", data: DOCUMENT });
  assert.deepEqual(made.data, DOCUMENT);
  const got = await records.get("doc");
  assert.deepEqual(got.data, DOCUMENT);
  assert.equal(Object.getPrototypeOf(got.data), Object.prototype);
  assert.ok(Array.isArray(got.data["array"]));
  assert.ok(Object.is(got.data["zero"], 0));
  // Filters read the same values the client wrote.
  assert.equal(await records.count({ filter: "data.integer = 42 AND data.nested.level1.level2.level3.value = \"deep\"" }), 1);
});

test("job payloads and results, and entry data, round-trip too", async () => {
  const queue = client.queue(unique("q"));
  const enqueued = await queue.enqueue(DOCUMENT);
  assert.deepEqual(enqueued.payload, DOCUMENT);
  const [leased] = await queue.lease({ maxJobs: 1 });
  assert.ok(leased);
  assert.deepEqual(leased.payload, DOCUMENT);
  const done = await queue.ack(leased, { result: DOCUMENT });
  assert.deepEqual(done.result, DOCUMENT);

  const id = unique("t");
  await client.transcripts.create({ transcriptId: id });
  await client.transcripts.append(id, [{ role: "tool", content: "data", data: DOCUMENT }, "plain"]);
  const entries = [];
  for await (const entry of client.transcripts.read(id)) entries.push(entry);
  assert.deepEqual(entries[0]?.data, DOCUMENT);
  assert.equal(entries[1]?.data, undefined);
  assert.equal(entries[1]?.content, "plain");
});

test("what is not JSON is refused before it is sent", async () => {
  const records = client.records(unique("c"));
  await assert.rejects(records.create({ data: [] as unknown as JsonObject }), TypeError);
  await assert.rejects(records.create({ data: null as unknown as JsonObject }), TypeError);
});
