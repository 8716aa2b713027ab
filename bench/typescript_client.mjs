// The Node side of bench/typescript.py: one measurement per run, printed as
// one JSON line on stdout. It uses the built package (make ts-build), loaded
// before the clock starts.
//
//   node bench/typescript_client.mjs read TARGET NAMESPACE TRANSCRIPT_ID ENTRIES [MAX_BATCH_BYTES]
//     ReadTranscript of the whole transcript (no follow) through
//     client.transcripts.read: every seq checked, role + content lengths summed;
//     timed after an untimed read of the first 50,000 entries (V8's warm-up).
//     -> {"entries", "bytes", "seconds", "cpu_seconds"}
//
//   node bench/typescript_client.mjs deliver TARGET NAMESPACE QUEUE JOBS WARMUP GAP_MS
//     Enqueue -> delivery to a consumer already waiting in queue.subscribe()
//     (SubscribeJobs, maxInFlight 1) on a client (connection) of its own, one job
//     at a time, GAP_MS apart; t0 just before enqueue is called, t1 when the
//     consumer has the job; it acks before the next. -> {"milliseconds": [...]}
import { StrataClient } from "../clients/typescript/dist/index.js";

const [command, target, namespace, name, countText, ...rest] = process.argv.slice(2);
const count = Number(countText);

async function read() {
  const client = new StrataClient({ target, namespace });
  const maxBatchBytes = Number(rest[0] ?? 0);
  // Untimed, as the Python side's process is warm: the first 50,000 entries, so
  // that V8 has compiled the read path before the clock starts.
  let warm = 0;
  for await (const _ of client.transcripts.read(name, { maxBatchBytes })) {
    if (++warm === 50_000) break;
  }
  const cpu = process.cpuUsage();
  const started = performance.now();
  let expected = 1;
  let bytes = 0;
  for await (const entry of client.transcripts.read(name, { maxBatchBytes })) {
    if (entry.seq !== expected) throw new Error(`seq ${entry.seq} where ${expected} was due`);
    expected += 1;
    bytes += entry.role.length + entry.content.length;
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  client.close();
  if (expected - 1 !== count) throw new Error(`read ${expected - 1} entries, not ${count}`);
  return { entries: count, bytes, seconds, cpu_seconds: (used.user + used.system) / 1e6 };
}

async function deliver() {
  const [warmupText, gapText] = rest;
  const warmup = Number(warmupText);
  const gapMs = Number(gapText);
  const producer = new StrataClient({ target, namespace });
  const consumer = new StrataClient({ target, namespace });
  const queue = producer.queue(name);
  const subscription = consumer.queue(name).subscribe({ maxInFlight: 1 });
  const arrivals = [];
  let wake = () => undefined;
  const consuming = (async () => {
    for await (const job of subscription) {
      const received = performance.now();
      await subscription.ack(job);
      arrivals.push({ id: job.id, received });
      wake();
    }
  })();
  const milliseconds = [];
  // Let the subscription's stream reach the server before the first job.
  await new Promise((done) => setTimeout(done, 200));
  for (let i = 0; i < count + warmup; i++) {
    await new Promise((done) => setTimeout(done, gapMs));
    const arrived = new Promise((done) => (wake = done));
    const sent = performance.now();
    const job = await queue.enqueue({ n: i });
    await arrived;
    const { id, received } = arrivals.shift();
    if (id !== job.id) throw new Error("the consumer received another job");
    if (i >= warmup) milliseconds.push(received - sent);
  }
  await subscription.close();
  await consuming;
  producer.close();
  consumer.close();
  return { milliseconds };
}

const measure = { read, deliver }[command];
if (measure === undefined) throw new Error(`unknown command ${command}`);
process.stdout.write(`${JSON.stringify(await measure())}\n`);
