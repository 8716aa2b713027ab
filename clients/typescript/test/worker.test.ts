/** `queue.work` and `queue.subscribe`: the worker loop, heartbeats, stopping, crashes. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Job } from "@strata/client";
import { TARGET, collect, eventually, newClient, unique } from "./support/env.js";

const client = newClient();
after(() => client.close());

/** Resolves once `signal` has aborted (at once if it has). */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((done) => signal.addEventListener("abort", () => done(), { once: true }));
}

describe("work", () => {
  test("runs every job, concurrency at a time, acks with results and fails with errors", async () => {
    const queue = client.queue(unique("q"));
    await queue.batchEnqueue(Array.from({ length: 12 }, (_, n) => ({ payload: { n }, maxAttempts: 1 })));
    const stop = new AbortController();
    let running = 0;
    let most = 0;
    const working = queue.work(
      async (job) => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((done) => setTimeout(done, 50));
        running -= 1;
        const n = job.payload["n"] as number;
        if (n % 4 === 3) throw new Error(`job ${n} failed`);
        return { doubled: n * 2 };
      },
      { concurrency: 3, signal: stop.signal, waitMs: 1_000 },
    );
    await eventually(async () => {
      const stats = await queue.stats();
      return stats.completed + stats.dead === 12;
    }, 30_000, "every job settled");
    stop.abort();
    await working;
    assert.ok(most <= 3, `ran ${most} at once`);
    const jobs = await collect(queue.list());
    const completed = jobs.filter((job) => job.state === "completed");
    const dead = jobs.filter((job) => job.state === "dead");
    assert.equal(completed.length, 9);
    assert.equal(dead.length, 3);
    for (const job of completed) {
      assert.deepEqual(job.result, { doubled: (job.payload["n"] as number) * 2 });
    }
    for (const job of dead) assert.equal(job.lastError, `Error: job ${job.payload["n"]} failed`);
  });

  test("the heartbeat keeps a short lease alive while the handler runs", async () => {
    const queue = client.queue(unique("q"));
    const job = await queue.enqueue({});
    const stop = new AbortController();
    await queue.work(
      async () => {
        await new Promise((done) => setTimeout(done, 2_600)); // more than twice the lease
        stop.abort();
        return { ok: true };
      },
      { leaseDurationMs: 1_000, signal: stop.signal, waitMs: 1_000 },
    );
    const done = await queue.get(job.id);
    assert.equal(done.state, "completed");
    assert.equal(done.attempt, 1, "the lease never expired, so the job ran once");
  });

  test("abort stops leasing, lets handlers finish, and releases what they gave up", async () => {
    const queue = client.queue(unique("q"));
    const kept = await queue.enqueue({ kind: "finishes" });
    const given = await queue.enqueue({ kind: "gives up" });
    const stop = new AbortController();
    const started: string[] = [];
    const working = queue.work(
      async (job, { signal }) => {
        started.push(job.id);
        if (started.length === 2) stop.abort();
        await aborted(signal);
        if (job.payload["kind"] === "gives up") throw signal.reason;
        return undefined;
      },
      { concurrency: 2, signal: stop.signal, waitMs: 1_000 },
    );
    await working;
    assert.equal(started.length, 2);
    assert.equal((await queue.get(kept.id)).state, "completed");
    const released = await queue.get(given.id);
    assert.equal(released.state, "available");
    assert.equal(released.attempt, 0, "a released attempt does not count");
    assert.equal(released.lastError, undefined);
  });

  test("a worker that stops while it waits returns without holding anything", async () => {
    const queue = client.queue(unique("q"));
    const stop = new AbortController();
    const working = queue.work(async () => undefined, { signal: stop.signal, waitMs: 20_000 });
    setTimeout(() => stop.abort(), 200);
    await working;
    const job = await queue.enqueue({});
    assert.equal((await queue.lease())[0]?.id, job.id, "the cancelled long poll leased nothing");
  });

  test("a lost lease is reported, its job is not acked, and the handler's signal aborts", async () => {
    const queue = client.queue(unique("q"));
    const job = await queue.enqueue({});
    const stop = new AbortController();
    const warnings: string[] = [];
    let wasAborted = false;
    await queue.work(
      async (_job, { signal }) => {
        await queue.cancel(job.id); // someone else settles the job meanwhile
        await aborted(signal);
        wasAborted = true;
        stop.abort();
        return { never: "stored" };
      },
      { leaseDurationMs: 1_000, signal: stop.signal, onWarning: (m) => warnings.push(m), waitMs: 1_000 },
    );
    assert.ok(wasAborted);
    assert.ok(warnings.some((w) => w.includes("lease lost")), warnings.join("\n"));
    const after = await queue.get(job.id);
    assert.equal(after.state, "cancelled");
    assert.equal(after.result, undefined);
  });

  test("a worker killed mid-job: the job comes back once its lease expires", async () => {
    const queue = client.queue(unique("q"));
    const job = await queue.enqueue({ crash: true });
    const script = fileURLToPath(new URL("./support/worker-child.js", import.meta.url));
    const child = spawn(process.execPath, [script, TARGET, client.namespace, queue.name, "2000"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = createInterface({ input: child.stdout });
    const exited = new Promise((done) => child.once("exit", done));
    try {
      for await (const line of lines) {
        assert.equal(line, `started ${job.id}`);
        break;
      }
      assert.equal((await queue.get(job.id)).state, "leased");
    } finally {
      child.kill("SIGKILL");
      await exited;
    }
    const back = await eventually(
      async () => (await queue.lease({ waitMs: 1_000 }))[0],
      20_000,
      "the job's return after its lease expired",
    );
    assert.equal(back.id, job.id);
    assert.equal(back.attempt, 2, "the killed attempt counted; this is the next");
    await queue.ack(back);
  });
});

describe("subscribe", () => {
  test("jobs are pushed as they come; leaving the loop releases the unsettled", async () => {
    const queue = client.queue(unique("q"));
    const subscription = queue.subscribe({ maxInFlight: 2, leaseDurationMs: 1_000 });
    const seen: Job[] = [];
    const consuming = (async () => {
      for await (const job of subscription) {
        seen.push(job);
        if (job.payload["n"] === 0) await subscription.ack(job, { ok: true });
        if (seen.length === 2) break; // the second is left unsettled
      }
    })();
    await queue.enqueue({ n: 0 });
    await queue.enqueue({ n: 1 });
    await consuming;
    assert.deepEqual(seen.map((job) => job.payload["n"]), [0, 1]);
    assert.equal((await queue.get(seen[0]!.id)).state, "completed");
    // The subscription released the unsettled job as it closed ...
    const releases = await collect(
      client.admin.auditEntries({ entity: "job", entityId: seen[1]!.id, action: "release" }),
    );
    assert.equal(releases.length, 1);
    // ... and it is runnable again. Usually at once (attempt 0); but the server learns
    // of the stream's cancel a few ms after it is sent, so the release may wake the
    // dying stream, which can lease the job again: it then comes back when that lease
    // (1 s) expires (docs/queue.md, "Closing a subscription").
    const released = await eventually(async () => {
      const job = await queue.get(seen[1]!.id);
      return job.state === "available" && job;
    }, 5_000, "the released job runnable again");
    assert.ok(released.attempt <= 1);
  });
});
