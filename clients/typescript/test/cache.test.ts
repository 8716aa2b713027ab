/** The cache through the Node client. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { InvalidArgumentError, ResourceExhaustedError } from "@strata/client";
import { eventually, newClient, rejection, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());

test("set, get, delete, with a TTL", async () => {
  const cache = client.cache;
  const key = unique("k");
  assert.equal(await cache.get(key), undefined);
  await cache.set(key, new Uint8Array([0, 1, 2, 255]));
  assert.deepEqual(await cache.get(key), new Uint8Array([0, 1, 2, 255]));
  await cache.set(key, "héllo");
  assert.equal(Buffer.from((await cache.get(key)) ?? []).toString("utf8"), "héllo");
  assert.equal(await cache.delete(key), true);
  assert.equal(await cache.delete(key), false);
  assert.equal(await cache.get(key), undefined);

  await cache.set(key, "brief", { ttlMs: 1_000 });
  assert.ok(await cache.get(key));
  await eventually(async () => (await cache.get(key)) === undefined, 10_000, "the TTL's expiry");
});

test("each namespace has its own keys", async () => {
  const key = unique("k");
  await client.cache.set(key, "mine");
  const other = client.withNamespace(unique("ns"));
  assert.equal(await other.cache.get(key), undefined);
});

test("too large is TOO_LARGE; a bad key or TTL is INVALID_ARGUMENT", async () => {
  const tooLarge = await rejection(
    client.cache.set(unique("k"), new Uint8Array(1024 * 1024 + 1)),
    ResourceExhaustedError,
  );
  assert.equal(tooLarge.reason, "TOO_LARGE");
  const badKey = await rejection(client.cache.get(""), InvalidArgumentError);
  assert.ok(badKey.fieldViolations.length > 0);
  await rejection(client.cache.set(unique("k"), "x", { ttlMs: -5 }), InvalidArgumentError);
});
