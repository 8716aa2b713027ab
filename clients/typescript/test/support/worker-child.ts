/**
 * A worker process for the "worker killed mid-job" test: it works on the queue
 * named by its arguments (target, namespace, queue, lease ms), prints
 * "started <job id>" when its handler begins, and never finishes the job.
 */
import { StrataClient } from "@strata/client";

const [target, namespace, queue, leaseMs] = process.argv.slice(2);
const client = new StrataClient({ target: target as string, namespace: namespace as string });
await client.queue(queue as string).work(
  async (job) => {
    process.stdout.write(`started ${job.id}\n`);
    await new Promise(() => undefined); // hangs: the test kills the process here
  },
  { leaseDurationMs: Number(leaseMs), waitMs: 5_000 },
);
