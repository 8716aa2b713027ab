/** Transcripts through the Node client: every call, reads and follows, and their errors. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  ResourceExhaustedError,
  SeqMismatchError,
  TranscriptSealedError,
  newRequestId,
} from "@strata/client";
import { collect, newClient, rejection, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());
const transcripts = client.transcripts;

describe("transcripts", () => {
  test("create, get, append, read, seal, delete", async () => {
    const id = unique("t");
    const made = await transcripts.create({
      transcriptId: id,
      owner: "agents/a1",
      title: "Session",
      labels: { env: "test" },
    });
    assert.equal(made.id, id);
    assert.equal(made.nextSeq, 1);
    assert.deepEqual(made.labels, { env: "test" });
    assert.equal(made.sealed, false);

    const appended = await transcripts.append(id, [
      "hello",
      { role: "assistant", content: "hi there", data: { tokens: 3 } },
    ]);
    assert.deepEqual(appended, { firstSeq: 1, nextSeq: 3 });
    const more = await transcripts.append(id, [{ role: "user", content: "bye" }], { expectedNextSeq: 3 });
    assert.equal(more.firstSeq, 3);

    const entries = await collect(transcripts.read(id));
    assert.deepEqual(
      entries.map((e) => [e.seq, e.role, e.content]),
      [[1, "", "hello"], [2, "assistant", "hi there"], [3, "user", "bye"]],
    );
    assert.deepEqual(entries[1]?.data, { tokens: 3 });
    assert.ok(entries[0]?.createTime instanceof Date);
    assert.deepEqual((await collect(transcripts.read(id, { fromSeq: 2 }))).map((e) => e.seq), [2, 3]);
    assert.deepEqual((await collect(transcripts.read(id, { fromSeq: -1 }))).map((e) => e.seq), [3]);

    const got = await transcripts.get(id);
    assert.equal(got.nextSeq, 4);
    assert.ok(got.sizeBytes > 0);
    const sealed = await transcripts.seal(id);
    assert.equal(sealed.sealed, true);
    assert.ok(sealed.sealTime instanceof Date);
    const reader = transcripts.read(id, { follow: true });
    assert.equal((await collect(reader)).length, 3, "a follow of a sealed transcript ends");
    assert.equal(reader.sealed, true);

    await transcripts.delete(id);
    await rejection(transcripts.get(id), NotFoundError);
  });

  test("list pages through an owner's transcripts; search finds entries", async () => {
    const owner = unique("owner");
    for (let i = 0; i < 5; i++) await transcripts.create({ owner, title: `t${i}` });
    const listed = await collect(transcripts.list({ owner, pageSize: 2 }));
    assert.equal(listed.length, 5);
    assert.ok(listed.every((t) => t.owner === owner));

    const id = unique("t");
    await transcripts.create({ transcriptId: id });
    await transcripts.append(id, ["the printer is on fire", "all is well"]);
    const hits = await collect(transcripts.search("printer", { id }));
    assert.equal(hits.length, 1);
    assert.equal(hits[0]?.seq, 1);
    assert.equal(hits[0]?.transcriptId, id);
    assert.match(hits[0]?.snippet ?? "", /\*\*printer\*\*/);
  });

  test("follow delivers entries as they are appended, then ends on seal", async () => {
    const id = unique("t");
    await transcripts.create({ transcriptId: id });
    await transcripts.append(id, ["one"]);
    const reader = transcripts.read(id, { follow: true });
    const seen: string[] = [];
    const following = (async () => {
      for await (const entry of reader) {
        seen.push(entry.content);
        if (entry.content === "one") {
          await transcripts.append(id, ["two", "three"]);
        } else if (entry.content === "three") {
          await transcripts.seal(id);
        }
      }
    })();
    await following;
    assert.deepEqual(seen, ["one", "two", "three"]);
    assert.equal(reader.sealed, true);
    assert.equal(reader.nextSeq, 4);
  });

  test("errors: SEQ_MISMATCH with nextSeq, TRANSCRIPT_SEALED, OUT_OF_RANGE, TOO_LARGE with entryIndex", async () => {
    const id = unique("t");
    await transcripts.create({ transcriptId: id });
    await transcripts.append(id, ["a", "b"]);
    const mismatch = await rejection(transcripts.append(id, ["c"], { expectedNextSeq: 2 }), SeqMismatchError);
    assert.equal(mismatch.code, "FAILED_PRECONDITION");
    assert.equal(mismatch.reason, "SEQ_MISMATCH");
    assert.equal(mismatch.nextSeq, 3);

    const tooLarge = await rejection(
      transcripts.append(id, ["fine", "x".repeat(1100 * 1024)]),
      ResourceExhaustedError,
    );
    assert.equal(tooLarge.reason, "TOO_LARGE");
    assert.equal(tooLarge.entryIndex, 1);

    const pastEnd = await rejection(collect(transcripts.read(id, { fromSeq: 10 })), OutOfRangeError);
    assert.equal(pastEnd.code, "OUT_OF_RANGE");
    assert.equal(pastEnd.metadata["next_seq"], "3");

    await transcripts.seal(id);
    const sealed = await rejection(transcripts.append(id, ["late"]), TranscriptSealedError);
    assert.equal(sealed.reason, "TRANSCRIPT_SEALED");

    await rejection(transcripts.append(id, []), InvalidArgumentError);
    await rejection(collect(transcripts.read(unique("missing"))), NotFoundError);
  });

  test("a follower of a deleted transcript ends with NOT_FOUND", async () => {
    const id = unique("t");
    await transcripts.create({ transcriptId: id });
    const reading = collect(transcripts.read(id, { follow: true }));
    await new Promise((done) => setTimeout(done, 300));
    await transcripts.delete(id);
    await rejection(reading, NotFoundError);
  });

  test("an append with a requestId is applied once; a create too", async () => {
    const id = unique("t");
    const requestId = newRequestId();
    await transcripts.create({ transcriptId: id, requestId });
    await transcripts.create({ transcriptId: id, requestId });
    const appendId = newRequestId();
    const first = await transcripts.append(id, ["once"], { requestId: appendId });
    const again = await transcripts.append(id, ["once"], { requestId: appendId });
    assert.deepEqual(again, first);
    assert.equal((await transcripts.get(id)).nextSeq, 2);
  });

  test("reading stops when its signal aborts", async () => {
    const id = unique("t");
    await transcripts.create({ transcriptId: id });
    await transcripts.append(id, ["a"]);
    const stop = new AbortController();
    const seen = [];
    for await (const entry of transcripts.read(id, { follow: true, signal: stop.signal })) {
      seen.push(entry);
      stop.abort();
    }
    assert.equal(seen.length, 1);
  });
});
