/**
 * The data lifecycle calls (issue 22) through the Node client: one search across
 * kinds, parents and the refused or cascading record delete, the archive tier
 * and restore. Run by tests/typescript/test_node_lifecycle.py on both shapes
 * (named *.spec.ts so that the main suite's run leaves it to that file).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  HasChildrenError,
  InvalidArgumentError,
  NotFoundError,
  type SearchHit,
  writes,
} from "@strata/client";
import { collect, eventually, newClient, rejection, unique } from "./support/env.js";

const client = newClient({ actor: "node-lifecycle" });
after(() => client.close());

describe("search across kinds", () => {
  test("hits of every kind, typed by kind, narrowed and paged", async () => {
    const word = unique("w").replace("-", "");
    const notes = client.records(unique("c"));
    await notes.create({ recordId: "r1", data: { text: `a ${word} note` }, owner: "ada" });
    const transcript = await client.transcripts.create({ owner: "ada" });
    await client.transcripts.append(transcript.id, [{ role: "user", content: `said ${word} twice` }]);
    const named = await client.artifacts.upload(Buffer.from("bytes"), {
      owner: "bob",
      kind: "blob",
      name: `${word}.bin`,
    });
    const text = await client.artifacts.upload(Buffer.from(`the log mentions ${word}\n`), {
      owner: "bob",
      kind: "log",
      name: "build.log",
      contentType: "text/plain",
    });

    const hits = await eventually(async () => {
      const all = await collect(client.search(word));
      return all.some((h) => h.kind === "artifact_text") && all;
    }, 15_000, "the text artifact's indexing");
    const byKind = new Map(hits.map((hit) => [hit.kind, hit]));
    assert.deepEqual([...byKind.keys()].sort(), ["artifact", "artifact_text", "record", "transcript_entry"]);
    const record = byKind.get("record");
    assert.ok(record?.kind === "record");
    assert.deepEqual([record.collection, record.id, record.owner], [notes.collection, "r1", "ada"]);
    assert.match(record.snippet, new RegExp(`\\*\\*${word}\\*\\*`));
    const entry = byKind.get("transcript_entry");
    assert.ok(entry?.kind === "transcript_entry");
    assert.deepEqual([entry.transcriptId, entry.seq, entry.owner], [transcript.id, 1, "ada"]);
    const artifact = byKind.get("artifact");
    assert.ok(artifact?.kind === "artifact");
    assert.deepEqual([artifact.artifactId, artifact.name], [named.id, `${word}.bin`]);
    const content = byKind.get("artifact_text");
    assert.ok(content?.kind === "artifact_text");
    assert.equal(content.artifactId, text.id);
    for (const hit of hits) {
      assert.ok(hit.score > 0 && hit.score <= 1, `score ${hit.score}`);
      assert.ok(hit.time instanceof Date && hit.time.getTime() > 0);
    }

    const kinds = (found: SearchHit[]) => found.map((h) => h.kind).sort();
    assert.deepEqual(kinds(await collect(client.search(word, { kinds: ["record", "transcript_entry"] }))), [
      "record",
      "transcript_entry",
    ]);
    assert.deepEqual(kinds(await collect(client.search(word, { owner: "bob" }))), ["artifact", "artifact_text"]);
    const later = new Date(Date.now() + 3_600_000);
    assert.deepEqual(await collect(client.search(word, { startTime: later })), []);
    const paged = await collect(client.search(word, { pageSize: 1 }));
    assert.deepEqual(kinds(paged), kinds(hits));

    const ada = (await client.admin.usage({ owner: "ada" })).namespaces[0];
    assert.deepEqual([ada?.recordCount, ada?.transcriptCount, ada?.artifactCount], [1, 1, 0]);
  });

  test("bad searches", async () => {
    const empty = await rejection(collect(client.search("")), InvalidArgumentError);
    assert.ok(empty.fieldViolations.some((v) => v.field === "query"));
    const now = new Date();
    await rejection(collect(client.search("x", { startTime: now, endTime: now })), InvalidArgumentError);
    assert.throws(() => client.search("x", { kinds: ["nonsense" as "record"] }), TypeError);
  });
});

describe("owners", () => {
  test("list and count take an owner, quoted, beside a filter", async () => {
    const notes = client.records(unique("c"));
    const odd = 'bob "the" \\ builder';
    await notes.create({ recordId: "a1", data: { n: 1 }, owner: "ada" });
    await notes.create({ recordId: "a2", data: { n: 2 }, owner: "ada" });
    await notes.create({ recordId: "b1", data: { n: 3 }, owner: odd });
    await notes.create({ recordId: "x", data: { n: 4 } });
    const ids = async (options: { owner?: string; filter?: string }) =>
      (await collect(notes.list(options))).map((r) => r.id);
    assert.deepEqual(await ids({ owner: "ada" }), ["a1", "a2"]);
    assert.deepEqual(await ids({ owner: odd }), ["b1"]);
    assert.deepEqual(await ids({ owner: "ada", filter: "data.n > 1 OR data.n = 4" }), ["a2"]);
    assert.deepEqual(await ids({ owner: "" }), ["x"]);
    assert.equal(await notes.count({ owner: "ada" }), 2);
    assert.equal(await notes.count({ owner: "ada", filter: "data.n = 1" }), 1);
    assert.equal(await notes.count(), 4);
  });
});

describe("parents", () => {
  test("a record with children refuses a delete, then cascades", async () => {
    const runs = client.records(unique("runs"));
    await runs.create({ recordId: "run-1", data: {} });
    const parent = { collection: runs.collection, id: "run-1" };
    const transcript = await client.transcripts.create({ parent });
    const artifact = await client.artifacts.upload(Buffer.from("log"), { owner: "o", kind: "log", parent });
    assert.deepEqual(transcript.parent, parent);
    assert.deepEqual(artifact.parent, parent);
    assert.deepEqual((await client.transcripts.get(transcript.id)).parent, parent);

    const refused = await rejection(runs.delete("run-1"), HasChildrenError);
    assert.equal(refused.reason, "HAS_CHILDREN");
    assert.equal(refused.childCount, 2);
    assert.deepEqual(
      refused.children.map((c) => `${c.kind}:${c.id}`).sort(),
      [`artifact:${artifact.id}`, `transcript:${transcript.id}`].sort(),
    );
    assert.equal((await runs.get("run-1")).id, "run-1"); // nothing deleted

    const inCommit = await rejection(client.commit([writes.delete(runs.collection, "run-1")]), HasChildrenError);
    assert.deepEqual([inCommit.writeIndex, inCommit.childCount], [0, 2]);

    await runs.delete("run-1", { cascade: true });
    await rejection(runs.get("run-1"), NotFoundError);
    await rejection(client.transcripts.get(transcript.id), NotFoundError);
    await rejection(client.artifacts.get(artifact.id), NotFoundError);
  });
});

describe("archive tier", () => {
  test("an archived transcript reads the same and restores hot", async () => {
    const client = newClient({ actor: "node-lifecycle" }); // a namespace of its own: its policy archives all
    after(() => client.close());
    const transcripts = client.transcripts;
    const made = await transcripts.create();
    assert.equal(made.tier, "hot");
    await transcripts.append(made.id, ["one", "two", { role: "tool", content: "three" }]);
    await transcripts.seal(made.id);
    const hot = await collect(transcripts.read(made.id));

    await client.admin.setRetentionPolicy({ target: "archive_transcripts", maxAgeMs: 1000 });
    const policies = await client.admin.listRetentionPolicies();
    assert.deepEqual(policies.map((p) => p.target), ["archive_transcripts"]);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const report = await client.admin.cleanup();
    assert.equal(report.steps.find((s) => s.target === "archive_transcripts")?.count, 1);
    assert.equal((await transcripts.get(made.id)).tier, "archived");
    const tiers = (await client.admin.usage()).namespaces[0]?.transcriptTiers;
    assert.deepEqual([tiers?.hotTranscripts, tiers?.archivedTranscripts], [0, 1]);
    assert.deepEqual(await collect(transcripts.read(made.id)), hot);

    const restored = await transcripts.restore(made.id);
    assert.equal(restored.tier, "hot");
    assert.equal((await transcripts.get(made.id)).tier, "hot");
    assert.deepEqual(await collect(transcripts.read(made.id)), hot);
    assert.equal((await transcripts.restore(made.id)).tier, "hot"); // a hot one: unchanged
    await rejection(transcripts.restore(unique("none")), NotFoundError);
  });
});
