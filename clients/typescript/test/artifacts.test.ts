/** Artifacts through the Node client: uploads from every source, downloads, ranges, errors. */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { after, describe, test } from "node:test";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  toStrataError,
} from "@strata/client";
import { ArtifactService } from "@strata/client/gen/strata/v1/artifacts_pb";
import { SHAPE, collect, newClient, rejection, unique } from "./support/env.js";

const client = newClient();
const dir = mkdtempSync(join(tmpdir(), "strata-artifacts-"));
after(() => {
  client.close();
  rmSync(dir, { recursive: true, force: true });
});
const artifacts = client.artifacts;

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** A Writable that keeps what it is given. */
function sink(): Writable & { bytes(): Buffer } {
  const parts: Buffer[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _encoding, done) {
      parts.push(chunk);
      done();
    },
  });
  return Object.assign(writable, { bytes: () => Buffer.concat(parts) });
}

describe("artifacts", () => {
  test("upload bytes, a path and a stream; download to a path, a Writable and as a stream", async () => {
    const owner = unique("owner");
    const content = randomBytes(3 * 1024 * 1024 + 17);
    const fromBytes = await artifacts.upload(content, { owner, kind: "blob", name: "a.bin", labels: { k: "v" } });
    assert.equal(fromBytes.size, content.length);
    assert.equal(fromBytes.sha256, sha256(content));
    assert.equal(fromBytes.owner, owner);
    assert.equal(fromBytes.name, "a.bin");
    assert.deepEqual(fromBytes.labels, { k: "v" });

    const path = join(dir, "build.log");
    const text = Buffer.from("line of a build log\n".repeat(50_000));
    writeFileSync(path, text);
    const progress: number[] = [];
    const fromPath = await artifacts.upload(path, { owner, kind: "log", onProgress: (done) => progress.push(done) });
    assert.equal(fromPath.name, "build.log");
    assert.equal(fromPath.contentType, "text/plain");
    assert.equal(fromPath.compression, "zstd");
    assert.ok(fromPath.storedSize < fromPath.size / 3, "a text log is stored compressed");
    assert.equal(progress.at(-1), text.length);

    const fromStream = await artifacts.upload(Readable.from([Buffer.from("ab"), Buffer.from("cd")]), {
      owner,
      kind: "blob",
    });
    assert.equal(fromStream.sha256, sha256(Buffer.from("abcd")));
    assert.equal(fromStream.name, "artifact");

    const copy = join(dir, "copy.log");
    const downloaded = await artifacts.download(fromPath.id, copy);
    assert.equal(downloaded.id, fromPath.id);
    assert.deepEqual(readFileSync(copy), text);

    const into = sink();
    await artifacts.download(fromBytes.id, into);
    assert.deepEqual(into.bytes(), content);

    const { artifact, body } = await artifacts.open(fromBytes.id, { offset: 1_000_000, limit: 2_000_000 });
    assert.equal(artifact.id, fromBytes.id);
    const range = Buffer.concat(await collect(body));
    assert.deepEqual(range, content.subarray(1_000_000, 3_000_000));
    const textRange = Buffer.concat(await collect((await artifacts.open(fromPath.id, { offset: 5, limit: 10 })).body));
    assert.deepEqual(textRange, text.subarray(5, 15));

    const got = await artifacts.get(fromBytes.id);
    assert.equal(got.sha256, fromBytes.sha256);
    const listed = await collect(artifacts.list({ owner, pageSize: 2 }));
    assert.deepEqual(listed.map((a) => a.id), [fromBytes.id, fromPath.id, fromStream.id]);
    assert.deepEqual((await collect(artifacts.list({ owner, kind: "log" }))).map((a) => a.id), [fromPath.id]);

    await artifacts.delete(fromStream.id);
    await rejection(artifacts.get(fromStream.id), NotFoundError);
  });

  test("content the server stores is not sent again", async () => {
    const owner = unique("owner");
    const content = randomBytes(2 * 1024 * 1024);
    const path = join(dir, "same.bin");
    writeFileSync(path, content);
    assert.deepEqual(await artifacts.findMissingBlobs([sha256(content)]), [sha256(content)]);
    const sent: number[] = [];
    const first = await artifacts.upload(path, { owner, kind: "blob", onProgress: (done) => sent.push(done) });
    assert.deepEqual(sent, [1024 * 1024, 2 * 1024 * 1024], "the first upload sends two chunks");
    assert.deepEqual(await artifacts.findMissingBlobs([sha256(content)]), []);
    const again: number[] = [];
    const second = await artifacts.upload(path, { owner, kind: "blob", onProgress: (done) => again.push(done) });
    assert.deepEqual(again, [2 * 1024 * 1024], "the second sends only the header");
    assert.notEqual(second.id, first.id);
    assert.equal(second.sha256, first.sha256);
  });

  test("errors: NOT_FOUND, OUT_OF_RANGE, INVALID_ARGUMENT, BLOB_NOT_FOUND, presigned URLs by shape", async () => {
    const owner = unique("owner");
    await rejection(artifacts.download(unique("missing"), sink()), NotFoundError);
    const small = await artifacts.upload(Buffer.from("tiny"), { owner, kind: "blob" });
    await rejection(artifacts.open(small.id, { offset: 100 }), OutOfRangeError);
    const bad = await rejection(artifacts.upload(Buffer.from("x"), { owner, kind: "not a kind!" }), InvalidArgumentError);
    assert.ok(bad.fieldViolations.some((v) => v.field.includes("kind")), JSON.stringify(bad.fieldViolations));

    // A header naming content the namespace does not store, without chunks: the
    // generated client over the same connection, its error typed by toStrataError.
    const raw = client.service(ArtifactService);
    async function* headerOnly() {
      yield {
        part: {
          case: "header" as const,
          value: { owner, kind: "blob", name: "x", sha256: "0".repeat(64), namespace: client.namespace },
        },
      };
    }
    const missing = await raw.uploadArtifact(headerOnly()).then(
      () => assert.fail("uploaded nothing"),
      (error: unknown) => toStrataError(error),
    );
    assert.ok(missing instanceof FailedPreconditionError);
    assert.equal(missing.reason, "BLOB_NOT_FOUND");

    if (SHAPE === "sqlite") {
      const unsupported = await rejection(artifacts.url(small.id), FailedPreconditionError);
      assert.equal(unsupported.reason, "PRESIGNED_URLS_UNSUPPORTED");
    } else {
      const { url, expireTime, compression } = await artifacts.url(small.id, { expiryMs: 60_000 });
      assert.ok(expireTime.getTime() > Date.now());
      assert.equal(compression, "none");
      const response = await fetch(url);
      assert.equal(Buffer.from(await response.arrayBuffer()).toString(), "tiny");
    }
  });

  test("100 MB up and down: sha256 checked, memory bounded by chunks", async (t) => {
    const owner = unique("owner");
    const size = 100 * 1024 * 1024;
    const block = randomBytes(1024 * 1024);
    const sent = createHash("sha256");
    async function* content() {
      for (let at = 0; at < size; at += block.length) {
        const piece = Buffer.from(block);
        piece.writeUInt32BE(at / block.length, 0); // every MiB differs
        sent.update(piece);
        yield piece;
      }
    }
    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    // With --expose-gc (the harness runs node so) each sample is taken after a
    // collection: live memory, not garbage waiting for V8's next GC.
    const sampler = setInterval(() => {
      global.gc?.();
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 100);
    try {
      const uploaded = await artifacts.upload(content(), { owner, kind: "blob", name: "big.bin", timeoutMs: 300_000 });
      assert.equal(uploaded.size, size);
      assert.equal(uploaded.sha256, sent.digest("hex"));
      const received = createHash("sha256");
      let bytes = 0;
      const hashing = new Writable({
        write(chunk: Buffer, _encoding, done) {
          received.update(chunk);
          bytes += chunk.length;
          done();
        },
      });
      await artifacts.download(uploaded.id, hashing);
      assert.equal(bytes, size);
      assert.equal(received.digest("hex"), uploaded.sha256);
    } finally {
      clearInterval(sampler);
    }
    const growth = (peak - baseline) / (1024 * 1024);
    t.diagnostic(`RSS ${(baseline / 2 ** 20).toFixed(0)} MiB, peak +${growth.toFixed(0)} MiB`);
    // Holding the content whole would add at least 100 MiB; what is left is the
    // chunks in flight and HTTP/2's flow-control windows (about 30-50 MiB here).
    assert.ok(growth < 80, `RSS grew ${growth.toFixed(0)} MiB moving 100 MiB`);
  });
});
