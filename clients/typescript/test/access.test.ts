/**
 * Tokens and quotas (`client.admin.tokens`, `client.admin.quotas`) against a real
 * `strata serve --auth token` (over TLS, support/secure.ts), as root: what is
 * stored and shown, that a token made here lets its holder do what its role and
 * namespaces allow and nothing else, revocation, and quotas enforced on writes.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  AlreadyExistsError,
  InvalidArgumentError,
  type NewToken,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  type StrataClient,
  type Token,
  UnauthenticatedError,
} from "@strata/client";
import { collect, eventually, rejection, unique } from "./support/env.js";
import { tlsClient } from "./support/secure.js";

const root = tlsClient();
const clients: StrataClient[] = [root];
after(() => {
  for (const client of clients) client.close();
});

/** A client of the TLS server holding `secret`, in `namespace`. */
function holder(secret: string, namespace: string): StrataClient {
  const client = tlsClient({ token: secret, namespace });
  clients.push(client);
  return client;
}

/** Every token (all pages, one token a page) whose name starts with `prefix`. */
async function named(prefix: string, showInactive = false): Promise<Token[]> {
  const all = await collect(root.admin.tokens.list({ pageSize: 1, showInactive }));
  return all.filter((token) => token.name.startsWith(prefix));
}

describe("tokens", () => {
  test("create shows the secret once; the token is listed without it, by name", async () => {
    const prefix = unique("tok");
    const ns = unique("ns");
    const before = Date.now();
    const { token, secret } = await root.admin.tokens.create({
      name: `${prefix}-b`,
      role: "writer",
      namespaces: [ns],
      ttlMs: 3_600_000,
      rateLimit: 2.5,
      burst: 7,
    });
    assert.ok(secret.length >= 20);
    assert.deepEqual(
      [token.name, token.role, token.namespaces, token.rateLimit, token.burst, token.createdBy],
      [`${prefix}-b`, "writer", [ns], 2.5, 7, "root"],
    );
    assert.ok(token.createTime instanceof Date && token.createTime.getTime() >= before - 5_000);
    const lifetime = (token.expireTime?.getTime() ?? 0) - token.createTime.getTime();
    assert.ok(Math.abs(lifetime - 3_600_000) < 1_000, `lifetime ${lifetime} ms`);
    assert.equal(token.revokeTime, undefined);

    const forever = await root.admin.tokens.create({ name: `${prefix}-a`, role: "reader", namespaces: ["*"] });
    assert.equal(forever.token.expireTime, undefined);
    assert.deepEqual(forever.token.namespaces, ["*"]);

    const listed = await named(prefix);
    assert.deepEqual(
      listed.map((t) => t.name),
      [`${prefix}-a`, `${prefix}-b`],
    );
    assert.deepEqual(listed[1], token);
    assert.ok(listed.every((t) => !JSON.stringify(t).includes(secret)));
    assert.ok((await collect(root.admin.tokens.list())).some((t) => t.name === "root"));
  });

  test("a token lets its holder do what its role allows, in its namespaces only", async () => {
    const ns = unique("ns");
    const writer = await root.admin.tokens.create({ name: unique("w"), role: "writer", namespaces: [ns] });
    const reader = await root.admin.tokens.create({ name: unique("r"), role: "reader", namespaces: [ns] });
    const notes = holder(writer.secret, ns).records("notes");
    await notes.create({ recordId: "n1", data: { by: "writer" } });
    const [entry] = await collect(root.withNamespace(ns).admin.auditEntries({ entity: "record" }));
    assert.equal(entry?.actor, writer.token.name);

    const readOnly = holder(reader.secret, ns).records("notes");
    assert.deepEqual((await readOnly.get("n1")).data, { by: "writer" });
    const noWrites = await rejection(readOnly.create({ data: {} }), PermissionDeniedError);
    assert.equal(noWrites.reason, "ROLE_REQUIRED");
    assert.deepEqual(noWrites.metadata, { role: "writer" });
    const elsewhere = unique("ns");
    const outside = await rejection(
      holder(writer.secret, elsewhere).records("notes").get("n1"),
      PermissionDeniedError,
    );
    assert.equal(outside.reason, "NAMESPACE_NOT_ALLOWED");
    assert.deepEqual(outside.metadata, { namespace: elsewhere });
    const noAdmin = await rejection(holder(writer.secret, ns).admin.tokens.list().next(), PermissionDeniedError);
    assert.equal(noAdmin.reason, "ROLE_REQUIRED");
    assert.deepEqual(noAdmin.metadata, { role: "admin" });
  });

  test("revoke: refused from then on, listed only with showInactive; again returns it unchanged", async () => {
    const ns = unique("ns");
    const { token, secret } = await root.admin.tokens.create({ name: unique("gone"), role: "writer", namespaces: [ns] });
    const client = holder(secret, ns);
    await client.records("c").create({ data: {} });

    const revoked = await root.admin.tokens.revoke(token.name);
    assert.equal(revoked.name, token.name);
    assert.ok(revoked.revokeTime instanceof Date);
    await eventually(
      () => client.records("c").count().then(() => false, (e) => e instanceof UnauthenticatedError),
      10_000,
      "the revoked token's refusal",
    );
    assert.deepEqual(await named(token.name), []);
    assert.deepEqual(await named(token.name, true), [revoked]);
    assert.deepEqual(await root.admin.tokens.revoke(token.name), revoked);
    await rejection(root.admin.tokens.revoke(unique("nobody")), NotFoundError);
  });

  test("an expired token is listed only with showInactive and refused", async () => {
    const ns = unique("ns");
    const { token, secret } = await root.admin.tokens.create({
      name: unique("brief"),
      role: "reader",
      namespaces: [ns],
      ttlMs: 1_000,
    });
    const expires = token.expireTime?.getTime() ?? 0;
    await new Promise((done) => setTimeout(done, Math.max(0, expires - Date.now()) + 200));
    await rejection(holder(secret, ns).records("c").count(), UnauthenticatedError);
    assert.deepEqual(await named(token.name), []);
    assert.deepEqual(
      (await named(token.name, true)).map((t) => t.name),
      [token.name],
    );
  });

  test("a token's rate: past its burst, calls are refused (RATE_LIMITED) with a retry delay", async () => {
    const ns = unique("ns");
    const name = unique("slow");
    const { secret } = await root.admin.tokens.create({
      name,
      role: "reader",
      namespaces: [ns],
      rateLimit: 0.01,
      burst: 1,
    });
    const records = holder(secret, ns).records("c");
    let refusal: ResourceExhaustedError | undefined;
    for (let i = 0; i < 10 && refusal === undefined; i++) {
      refusal = await records.count().then(
        () => undefined,
        (e: unknown) => {
          if (e instanceof ResourceExhaustedError) return e;
          throw e;
        },
      );
    }
    assert.ok(refusal, "never refused");
    assert.equal(refusal.reason, "RATE_LIMITED");
    assert.ok((refusal.retryDelayMs ?? 0) > 0);
    assert.deepEqual(Object.keys(refusal.metadata).sort(), ["principal", "retry_after_seconds"]);
    assert.equal(refusal.metadata["principal"], name);
    // The same wait as RetryInfo's, in seconds (RetryInfo rounds it up to the nanosecond).
    const seconds = Number(refusal.metadata["retry_after_seconds"]);
    assert.ok(seconds > 0 && Math.abs(seconds * 1000 - (refusal.retryDelayMs ?? 0)) < 2, `${seconds} s`);
  });

  test("bad requests, taken names, and callers who are not admins of every namespace", async () => {
    const name = unique("dup");
    await root.admin.tokens.create({ name, role: "reader", namespaces: ["*"] });
    await rejection(root.admin.tokens.create({ name, role: "reader", namespaces: ["*"] }), AlreadyExistsError);
    const cases: [NewToken, string][] = [
      [{ name: "has space", role: "reader", namespaces: ["*"] }, "name"],
      [{ name: unique("t"), role: "reader", namespaces: [] }, "namespaces"],
      [{ name: unique("t"), role: "reader", namespaces: ["Not Valid"] }, "namespaces"],
      [{ name: unique("t"), role: "reader", namespaces: ["*"], ttlMs: 10 }, "ttl"],
      [{ name: unique("t"), role: "reader", namespaces: ["*"], burst: -1 }, "burst"],
    ];
    for (const [spec, field] of cases) {
      const error = await rejection(root.admin.tokens.create(spec), InvalidArgumentError);
      assert.deepEqual(
        error.fieldViolations.map((v) => v.field),
        [field],
      );
    }
    await assert.rejects(
      root.admin.tokens.create({ name: unique("t"), role: "owner" as "admin", namespaces: ["*"] }),
      TypeError,
    );

    const ns = unique("ns");
    const scoped = await root.admin.tokens.create({ name: unique("nsadmin"), role: "admin", namespaces: [ns] });
    const nsAdmin = holder(scoped.secret, ns).admin;
    const notEvery = await rejection(
      nsAdmin.tokens.create({ name: unique("t"), role: "reader", namespaces: [ns] }),
      PermissionDeniedError,
    );
    assert.equal(notEvery.reason, "NAMESPACE_NOT_ALLOWED");
    assert.deepEqual(notEvery.metadata, { namespace: "*" });
    await rejection(nsAdmin.tokens.revoke("root"), PermissionDeniedError);
  });
});

describe("quotas", () => {
  test("set, get, list, enforce on writes, and remove", async () => {
    const client = root.withNamespace(unique("quota"));
    const quotas = client.admin.quotas;
    const docs = client.records("docs");
    assert.equal(await quotas.get(), undefined);
    await docs.create({ recordId: "a", data: { text: "x".repeat(200) } });

    const saved = await quotas.set(10_000);
    assert.deepEqual([saved.namespace, saved.maxBytes], [client.namespace, 10_000]);
    assert.ok(saved.usedBytes > 200, `used ${saved.usedBytes}`);
    assert.deepEqual(await quotas.get(), saved);
    const every = await quotas.list();
    assert.ok(every.some((q) => q.namespace === client.namespace && q.maxBytes === 10_000));
    const names = every.map((q) => q.namespace);
    assert.deepEqual(names, [...names].sort());

    const refused = await rejection(
      docs.create({ recordId: "big", data: { text: "y".repeat(20_000) } }),
      ResourceExhaustedError,
    );
    assert.equal(refused.reason, "QUOTA_EXCEEDED");
    assert.deepEqual(refused.metadata, {
      namespace: client.namespace,
      used_bytes: String(saved.usedBytes),
      max_bytes: "10000",
    });
    assert.deepEqual(
      refused.quotaViolations.map((v) => [v.subject, v.description]),
      [[`namespace:${client.namespace}`, `${saved.usedBytes} of 10000 bytes used`]],
    );
    await rejection(docs.get("big"), NotFoundError);
    assert.equal((await quotas.get())?.usedBytes, saved.usedBytes);

    const removed = await quotas.set(0);
    assert.equal(removed.maxBytes, 0);
    assert.equal(await quotas.get(), undefined);
    await docs.create({ recordId: "big", data: { text: "y".repeat(20_000) } });
  });

  test("bad values; a namespace's admin may set its quota but not list every namespace's", async () => {
    const quotas = root.withNamespace(unique("quota")).admin.quotas;
    const error = await rejection(quotas.set(-1), InvalidArgumentError);
    assert.deepEqual(
      error.fieldViolations.map((v) => v.field),
      ["max_bytes"],
    );
    await assert.rejects(quotas.set(1.5), TypeError);

    const ns = unique("quota");
    const { secret } = await root.admin.tokens.create({ name: unique("nsadmin"), role: "admin", namespaces: [ns] });
    const own = holder(secret, ns).admin.quotas;
    assert.equal((await own.set(5_000)).maxBytes, 5_000);
    assert.equal((await own.get())?.maxBytes, 5_000);
    const notEvery = await rejection(own.list(), PermissionDeniedError);
    assert.equal(notEvery.reason, "NAMESPACE_NOT_ALLOWED");
    const other = unique("quota");
    const outside = await rejection(holder(secret, ns).withNamespace(other).admin.quotas.set(1), PermissionDeniedError);
    assert.deepEqual([outside.reason, outside.metadata], ["NAMESPACE_NOT_ALLOWED", { namespace: other }]);
  });
});
