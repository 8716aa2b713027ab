/** The job queue through the Node client: every call and its errors. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  LeaseLostError,
  NotFoundError,
  newRequestId,
} from "@strata/client";
import { collect, newClient, rejection, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());

describe("queue", () => {
  test("enqueue, lease, ack: the job completes with its result", async () => {
    const queue = client.queue(unique("q"));
    const job = await queue.enqueue({ to: "a@example.com" }, { priority: 3, maxAttempts: 5 });
    assert.equal(job.state, "available");
    assert.equal(job.priority, 3);
    assert.equal(job.maxAttempts, 5);
    assert.equal(job.attempt, 0);
    assert.equal(job.leaseToken, undefined);

    const [leased] = await queue.lease({ maxJobs: 10, leaseDurationMs: 10_000 });
    assert.ok(leased?.leaseToken);
    assert.equal(leased.id, job.id);
    assert.equal(leased.state, "leased");
    assert.equal(leased.attempt, 1);
    assert.ok(leased.leaseExpireTime instanceof Date);

    const extended = await queue.extend(leased, { leaseDurationMs: 20_000 });
    assert.ok((extended.leaseExpireTime?.getTime() ?? 0) > (leased.leaseExpireTime?.getTime() ?? 0));

    const done = await queue.ack(leased, { result: { sent: true } });
    assert.equal(done.state, "completed");
    assert.deepEqual(done.result, { sent: true });
    assert.ok(done.finishTime instanceof Date);
    assert.equal((await queue.get(job.id)).state, "completed");
  });

  test("a stale token is LEASE_LOST for ack, fail and extend", async () => {
    const queue = client.queue(unique("q"));
    await queue.enqueue({});
    const [leased] = await queue.lease();
    assert.ok(leased);
    const stale = { ...leased, leaseToken: "not-the-token" };
    for (const call of [
      () => queue.ack(stale),
      () => queue.fail(stale, "boom"),
      () => queue.extend(stale),
      () => queue.release(stale),
    ]) {
      const error = await rejection(call(), LeaseLostError);
      assert.equal(error.code, "FAILED_PRECONDITION");
      assert.equal(error.reason, "LEASE_LOST");
      assert.ok(error instanceof FailedPreconditionError);
    }
    await rejection(queue.ack({ id: "unknown-job", leaseToken: "x" }), NotFoundError);
  });

  test("ackMany completes each on its own", async () => {
    const queue = client.queue(unique("q"));
    await queue.batchEnqueue([{ payload: { n: 1 } }, { payload: { n: 2 } }]);
    const [first, second] = await queue.lease({ maxJobs: 2 });
    assert.ok(first && second);
    const results = await queue.ackMany([
      { job: first, result: { ok: 1 } },
      { ...second, leaseToken: "stale" },
    ]);
    assert.equal((results[0] as { state: string }).state, "completed");
    assert.ok(results[1] instanceof LeaseLostError);
    assert.equal((results[1] as LeaseLostError).reason, "LEASE_LOST");
  });

  test("fail retries after the backoff, then the job is dead; retry revives it", async () => {
    const queue = client.queue(unique("q"));
    const job = await queue.enqueue({}, { maxAttempts: 2, retryBackoffMs: 60_000 });
    assert.equal(job.retryBackoffMs, 60_000);
    let [leased] = await queue.lease();
    assert.ok(leased);
    const failed = await queue.fail(leased, new RangeError("bad address"), { retryDelayMs: 0 });
    assert.equal(failed.lastError, "RangeError: bad address");
    assert.ok(failed.state === "available" || failed.state === "scheduled");
    [leased] = await queue.lease({ waitMs: 2_000 });
    assert.ok(leased);
    assert.equal(leased.attempt, 2);
    const dead = await queue.fail(leased, "still bad");
    assert.equal(dead.state, "dead");
    assert.equal(dead.lastError, "still bad");
    assert.deepEqual((await collect(queue.list({ state: "dead" }))).map((j) => j.id), [job.id]);

    const revived = await queue.retry(job.id);
    assert.equal(revived.state, "available");
    assert.equal(revived.attempt, 0);
    const notRetryable = await rejection(queue.retry(job.id), FailedPreconditionError);
    assert.equal(notRetryable.reason, "JOB_NOT_RETRYABLE");
  });

  test("release gives a job back without counting the attempt", async () => {
    const queue = client.queue(unique("q"));
    await queue.enqueue({});
    const [leased] = await queue.lease();
    assert.ok(leased);
    const released = await queue.release(leased);
    assert.equal(released.state, "available");
    const [again] = await queue.lease();
    assert.equal(again?.attempt, 1);
  });

  test("cancel, JOB_FINISHED, and UNIQUE_KEY_IN_USE on retry", async () => {
    const queue = client.queue(unique("q"));
    const first = await queue.enqueue({ n: 1 }, { uniqueKey: "k" });
    const same = await queue.enqueue({ n: 2 }, { uniqueKey: "k" });
    assert.equal(same.id, first.id);
    assert.equal(same.uniqueKey, "k");
    const cancelled = await queue.cancel(first.id);
    assert.equal(cancelled.state, "cancelled");
    const finished = await rejection(queue.cancel(first.id), FailedPreconditionError);
    assert.equal(finished.reason, "JOB_FINISHED");
    await queue.enqueue({ n: 3 }, { uniqueKey: "k" });
    const inUse = await rejection(queue.retry(first.id), FailedPreconditionError);
    assert.equal(inUse.reason, "UNIQUE_KEY_IN_USE");
  });

  test("batchEnqueue is all or none, naming the bad job", async () => {
    const queue = client.queue(unique("q"));
    const jobs = await queue.batchEnqueue(
      [{ payload: { n: 1 } }, { payload: { n: 2 }, priority: 9, delayMs: 60_000 }],
      { requestId: newRequestId() },
    );
    assert.deepEqual(jobs.map((job) => job.payload["n"]), [1, 2]);
    assert.equal(jobs[1]?.state, "scheduled");
    const bad = await rejection(
      queue.batchEnqueue([{ payload: {} }, { payload: {}, maxAttempts: 5000 }]),
      InvalidArgumentError,
    );
    assert.equal(bad.jobIndex, 1);
    assert.equal((await queue.stats()).available, 1);
  });

  test("stats, pause and resume; list pages through every job", async () => {
    const queue = client.queue(unique("q"));
    await queue.batchEnqueue(Array.from({ length: 7 }, (_, n) => ({ payload: { n } })));
    await queue.enqueue({ later: true }, { runTime: new Date(Date.now() + 3_600_000) });
    const paused = await queue.pause();
    assert.equal(paused.paused, true);
    assert.deepEqual(await queue.lease({ maxJobs: 5 }), []);
    const resumed = await queue.resume();
    assert.equal(resumed.paused, false);
    const stats = await queue.stats();
    assert.equal(stats.available, 7);
    assert.equal(stats.scheduled, 1);
    assert.equal(stats.queue, queue.name);
    assert.ok(stats.expiryWindowMs > 0);
    assert.equal((await collect(queue.list({ pageSize: 3 }))).length, 8);
  });

  test("listQueues: every queue with jobs or paused, by name, with its stats", async () => {
    const scoped = client.withNamespace(unique("ns"));
    assert.deepEqual(await collect(scoped.listQueues()), []);
    await scoped.queue("b").enqueue({});
    await scoped.queue("b").enqueue({}, { runTime: new Date(Date.now() + 3_600_000) });
    await scoped.queue("a").pause();
    const listed = await collect(scoped.listQueues({ pageSize: 1 }));
    assert.deepEqual(
      listed.map((stats) => [stats.queue, stats.paused, stats.available, stats.scheduled]),
      [
        ["a", true, 0, 0],
        ["b", false, 1, 1],
      ],
    );
  });

  test("an enqueue with a requestId is applied once", async () => {
    const queue = client.queue(unique("q"));
    const requestId = newRequestId();
    const first = await queue.enqueue({}, { requestId });
    const again = await queue.enqueue({}, { requestId });
    assert.equal(again.id, first.id);
  });
});
