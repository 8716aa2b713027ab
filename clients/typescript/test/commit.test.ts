/** Commit through the Node client: records, enqueues and appends, all or nothing. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { AlreadyExistsError, newRequestId, writes } from "@strata/client";
import { collect, newClient, rejection, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());

test("one commit creates, updates, deletes, enqueues and appends", async () => {
  const records = client.records(unique("c"));
  const queue = client.queue(unique("q"));
  const log = unique("t");
  await client.transcripts.create({ transcriptId: log });
  await records.create({ recordId: "old", data: {} });
  await records.create({ recordId: "counter", data: { n: 1 } });

  const results = await client.commit(
    [
      writes.create(records.collection, { recordId: "ex-1", data: { state: "queued" } }),
      writes.update(records.collection, "counter", { data: { n: 2 }, expectedVersion: 1 }),
      writes.delete(records.collection, "old"),
      writes.enqueue(queue.name, { execution: "ex-1" }, { priority: 2 }),
      writes.append(log, ["queued", { role: "system", content: "more", data: { k: 1 } }]),
    ],
    { requestId: newRequestId() },
  );
  assert.deepEqual(results.map((r) => r.case), ["record", "record", "deleted", "job", "appended"]);
  const [created, updated, deleted, job, appended] = results;
  assert.equal(created?.case === "record" && created.value.id, "ex-1");
  assert.equal(updated?.case === "record" && updated.value.version, 2);
  assert.deepEqual(deleted?.case === "deleted" && deleted.value, {
    collection: records.collection,
    id: "old",
    existed: true,
  });
  assert.equal(job?.case === "job" && job.value.priority, 2);
  assert.deepEqual(appended?.case === "appended" && appended.value, { firstSeq: 1, nextSeq: 3 });
  assert.equal((await queue.stats()).available, 1);
  assert.equal((await collect(client.transcripts.read(log))).length, 2);
});

test("a failing write writes nothing and is named by writeIndex", async () => {
  const records = client.records(unique("c"));
  const queue = client.queue(unique("q"));
  await records.create({ recordId: "taken", data: {} });
  const error = await rejection(
    client.commit([
      writes.create(records.collection, { recordId: "new", data: {} }),
      writes.enqueue(queue.name, {}),
      writes.create(records.collection, { recordId: "taken", data: {} }),
    ]),
    AlreadyExistsError,
  );
  assert.equal(error.writeIndex, 2);
  assert.equal(await records.count(), 1);
  assert.equal((await queue.stats()).available, 0);
});

test("a commit retried with its requestId is applied once", async () => {
  const records = client.records(unique("c"));
  const requestId = newRequestId();
  const commit = () => client.commit([writes.create(records.collection, { data: {} })], { requestId });
  const [first] = await commit();
  const [again] = await commit();
  assert.deepEqual(again, first);
  assert.equal(await records.count(), 1);
});

test("commit writes carry owners", async () => {
  const records = client.records(unique("c"));
  await records.create({ recordId: "kept", data: {}, owner: "ada" });
  const results = await client.commit([
    writes.create(records.collection, { recordId: "new", data: {}, owner: "bob" }),
    writes.update(records.collection, "kept", { data: { n: 1 } }),
  ]);
  const owners = results.map((r) => (r.case === "record" ? r.value.owner : undefined));
  assert.deepEqual(owners, ["bob", "ada"]);
});
