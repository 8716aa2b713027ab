/** The operator's calls through the Node client. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  AlreadyExistsError,
  InvalidArgumentError,
  NotFoundError,
  type Progress,
} from "@strata/client";
import { SHAPE, collect, newClient, rejection, unique } from "./support/env.js";

const client = newClient({ actor: "node-tests" });
const dir = mkdtempSync(join(tmpdir(), "strata-admin-"));
after(() => {
  client.close();
  rmSync(dir, { recursive: true, force: true });
});
const admin = client.admin;

describe("admin", () => {
  test("serverInfo describes the server", async () => {
    const info = await admin.serverInfo();
    assert.match(info.version, /^\d+\.\d+/);
    assert.equal(info.databaseBackend, SHAPE);
    assert.ok(info.capabilities.length > 0);
    assert.ok(info.startTime instanceof Date);
    assert.equal(typeof info.taskCount, "number");
  });

  test("usage counts what the namespace stores", async () => {
    const records = client.records(unique("c"));
    await records.create({ data: { a: 1 } });
    await records.create({ data: { a: 2 } });
    await client.queue(unique("q")).enqueue({});
    const usage = await admin.usage();
    assert.equal(usage.namespaces.length, 1);
    const mine = usage.namespaces[0];
    assert.equal(mine?.namespace, client.namespace);
    assert.ok((mine?.recordCount ?? 0) >= 2);
    assert.deepEqual(
      mine?.collections.find((c) => c.collection === records.collection)?.recordCount,
      2,
    );
    assert.ok(mine?.jobs.some((count) => count.state === "available" && count.count >= 1));
  });

  test("the audit log names the actor and each mutation", async () => {
    const records = client.records(unique("c"));
    await records.create({ recordId: "a", data: {} });
    await records.update("a", { data: { v: 2 } });
    const entries = await collect(admin.auditEntries({ entity: "record", entityId: `${records.collection}/a` }));
    assert.deepEqual(entries.map((e) => e.action), ["update", "create"]);
    assert.ok(entries.every((e) => e.actor === "node-tests"));
    assert.ok(entries[0]?.time instanceof Date);
    assert.equal(entries[0]?.version, 2);
  });

  test("export then import into another namespace, with progress; conflicts and bad archives", async () => {
    const source = client.withNamespace(unique("ns"));
    const records = source.records(unique("c"));
    for (let i = 0; i < 10; i++) await records.create({ recordId: `r${i}`, data: { i } });
    const transcript = unique("t");
    await source.transcripts.create({ transcriptId: transcript });
    await source.transcripts.append(transcript, ["one", "two"]);
    await source.artifacts.upload(Buffer.from("artifact bytes"), { owner: "o", kind: "blob" });

    const archive = join(dir, "export.tar");
    const progress: Progress[] = [];
    const summary = await source.admin.export(archive, { onProgress: (p) => progress.push(p) });
    assert.equal(summary.namespace, source.namespace);
    assert.equal(summary.counts["records"], 10);
    assert.equal(summary.counts["entries"], 2);
    assert.equal(summary.archiveBytes, statSync(archive).size);
    assert.ok(progress.length > 0);

    const target = unique("ns");
    const imported = await admin.import(archive, { into: target });
    assert.equal(imported.namespace, target);
    assert.equal(imported.sourceNamespace, source.namespace);
    assert.equal(imported.counts.find((c) => c.kind === "records")?.imported, 10);
    const copy = client.withNamespace(target);
    assert.deepEqual((await copy.records(records.collection).get("r3")).data, { i: 3 });
    assert.equal((await collect(copy.transcripts.read(transcript))).length, 2);

    await rejection(admin.import(archive, { into: target }), AlreadyExistsError);
    const skipped = await admin.import(archive, { into: target, onConflict: "skip" });
    assert.equal(skipped.counts.find((c) => c.kind === "records")?.skipped, 10);

    const garbage = await rejection(admin.import(Buffer.from("not a tar archive at all")), InvalidArgumentError);
    assert.equal(garbage.reason, "BAD_ARCHIVE");
  });

  test("retention policies: set, list, delete; cleanup dry run reports them", async () => {
    const collection = unique("c");
    const set = await admin.setRetentionPolicy({ target: "records", selector: collection, maxAgeMs: 86_400_000 });
    assert.equal(set.target, "records");
    assert.equal(set.selector, collection);
    assert.equal(set.maxAgeMs, 86_400_000);
    const listed = await admin.listRetentionPolicies();
    assert.ok(listed.some((p) => p.selector === collection && p.target === "records"));

    const report = await admin.cleanup({ dryRun: true });
    assert.equal(report.dryRun, true);
    assert.ok(report.steps.some((step) => step.selector === collection));

    await admin.deleteRetentionPolicy("records", collection);
    await rejection(admin.deleteRetentionPolicy("records", collection), NotFoundError);
    await rejection(
      admin.setRetentionPolicy({ target: "records", maxAgeMs: 86_400_000 }),
      InvalidArgumentError,
    );
  });

  test("log retention policies take no selector; cleanupStatus before any scheduled pass", async () => {
    const set = await admin.setRetentionPolicy({ target: "audit_log", maxAgeMs: 90 * 86_400_000 });
    assert.equal(set.target, "audit_log");
    assert.equal(set.selector, "");
    const listed = await admin.listRetentionPolicies();
    assert.ok(listed.some((p) => p.target === "audit_log" && p.maxAgeMs === 90 * 86_400_000));
    await rejection(
      admin.setRetentionPolicy({ target: "request_log", selector: "x", maxAgeMs: 86_400_000 }),
      InvalidArgumentError,
    );
    await admin.deleteRetentionPolicy("audit_log");

    // The session's servers schedule their first pass an hour after start.
    const status = await admin.cleanupStatus();
    assert.equal(status.running, undefined);
    assert.equal(status.last, undefined);
  });

  test("checkIntegrity reports, with progress", async () => {
    const progress: Progress[] = [];
    const report = await admin.checkIntegrity({ onProgress: (p) => progress.push(p) });
    // Findings depend on what other tests left on the shared server (orphan blobs).
    assert.ok(Array.isArray(report.findings));
    assert.equal(report.repair, false);
    assert.ok(report.checked.some((count) => count.check === "jobs"), JSON.stringify(report.checked));
    assert.ok(report.startTime instanceof Date && report.endTime instanceof Date);
    assert.ok(report.startTime.getTime() <= report.endTime.getTime());
    const status = await admin.integrityStatus();
    assert.deepEqual(status.lastReport, report);
    assert.equal(status.scheduleIntervalMs, undefined);
  });

  test("indexes: create (streams progress), list, drop", async () => {
    const collection = unique("c");
    const index = await admin.createIndex(collection, "data.status");
    assert.equal(index.collection, collection);
    assert.equal(index.field, "data.status");
    const listed = await admin.listIndexes({ collection });
    assert.deepEqual(listed.map((i) => i.field), ["data.status"]);
    await admin.dropIndex(collection, "data.status");
    assert.deepEqual(await admin.listIndexes({ collection }), []);
    await rejection(admin.dropIndex(collection, "data.status"), NotFoundError);
  });
});
