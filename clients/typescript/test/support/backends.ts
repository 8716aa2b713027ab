/**
 * The backends under an own server (support/server.ts), as the tests disturb
 * them: a Redis of the test's own that it stops and starts again, a
 * transaction of another process holding a database lock, and the stored bytes
 * of a blob (on local disk, or an object in the S3 bucket of the tests' S3
 * endpoint, moto).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Artifact } from "@strata/client";
import { type OwnServer, freePort, python } from "./server.js";

/** A redis-server on 127.0.0.1 (no persistence), stopped and started again on the same port. */
export class OwnRedis {
  private readonly workdir = mkdtempSync(join(tmpdir(), "strata-node-redis-"));
  private process: ChildProcess | undefined;
  port = 0;

  /** redis:// URL of this server. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Start it (on its port from before, or a free one) and wait until it answers PING. */
  async start(): Promise<void> {
    if (this.process !== undefined) return;
    if (this.port === 0) this.port = await freePort();
    const child = spawn(
      "redis-server",
      ["--port", String(this.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", this.workdir],
      { stdio: "ignore" },
    );
    this.process = child;
    const deadline = performance.now() + 15_000;
    while (!(await this.answers())) {
      if (child.exitCode !== null) throw new Error(`redis-server exited ${child.exitCode}`);
      if (performance.now() > deadline) throw new Error("redis-server did not start");
      await new Promise((done) => setTimeout(done, 50));
    }
  }

  private async answers(): Promise<boolean> {
    const { connect } = await import("node:net");
    return new Promise((done) => {
      const socket = connect(this.port, "127.0.0.1");
      socket.once("error", () => done(false));
      socket.once("connect", () => socket.write("PING\r\n"));
      socket.once("data", (data) => {
        socket.destroy();
        done(data.toString().startsWith("+PONG"));
      });
    });
  }

  /** SIGTERM to its PID, and wait until it has exited. */
  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    await exited;
  }

  /** Stop it and remove its work directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.workdir, { recursive: true, force: true });
  }
}

/**
 * Run `statements` in a transaction of another process (Python's sqlite3, or
 * psycopg on PostgreSQL, from the venv the server runs in) against the server's
 * database, and keep it open: resolves once they have run, to a function that
 * rolls the transaction back and waits for the process to end.
 */
export async function holdTransaction(databaseUrl: string, statements: string[]): Promise<() => Promise<void>> {
  const script = String.raw`
import sys
url, statements = sys.argv[1], sys.argv[2:]
if url.startswith("sqlite:///"):
    import sqlite3
    conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    run = conn.execute
else:
    import psycopg
    conn = psycopg.connect(url)
    run = conn.execute
for statement in statements:
    run(statement)
print("held", flush=True)
sys.stdin.read()
run("ROLLBACK")
conn.close()
`;
  const child = spawn(python(), ["-c", script, databaseUrl, ...statements], { stdio: ["pipe", "pipe", "pipe"] });
  let errors = "";
  child.stderr?.on("data", (data: Buffer) => (errors += data.toString()));
  const exited = new Promise<number | null>((done) => child.once("exit", done));
  await new Promise<void>((held, failed) => {
    child.stdout?.once("data", () => held());
    void exited.then((code) => failed(new Error(`the lock holder exited ${code}:\n${errors}`)));
  });
  return async () => {
    child.stdin?.end();
    const code = await exited;
    if (code !== 0) throw new Error(`the lock holder exited ${code}:\n${errors}`);
  };
}

/** The key (relative path) of an artifact's stored bytes, the same on disk and in a bucket. */
function blobKey(artifact: Artifact): string {
  const hash = artifact.sha256;
  return `blobs/sha256/${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}${artifact.compression === "zstd" ? ".zst" : ""}`;
}

/** Ways to damage an artifact's stored bytes. */
export type Damage = "remove" | "truncate" | "overwrite";

/**
 * Damage the stored bytes of `artifact` in `server`'s blob store: remove them,
 * cut them to half their length, or overwrite them with as many other bytes.
 */
export async function damageBlob(server: OwnServer, artifact: Artifact, how: Damage): Promise<void> {
  const key = blobKey(artifact);
  if (server.s3 === undefined) {
    const path = join(server.dataDir, key);
    const size = statSync(path).size;
    if (how === "remove") rmSync(path);
    else if (how === "truncate") truncateSync(path, Math.floor(size / 2));
    else writeFileSync(path, Buffer.alloc(size, 0x55));
    return;
  }
  const url = `http://${server.s3.endpoint}/${server.s3.bucket}/${key}`;
  // moto refuses anonymous requests but checks no signature (tests/support/s3.py):
  // naming the test credentials' access key is enough.
  const headers = {
    authorization:
      "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0",
  };
  const stored = await fetch(url, { headers });
  if (!stored.ok) throw new Error(`GET ${url}: HTTP ${stored.status}`);
  const bytes = Buffer.from(await stored.arrayBuffer());
  const changed =
    how === "remove"
      ? await fetch(url, { method: "DELETE", headers })
      : await fetch(url, {
          method: "PUT",
          headers,
          body: how === "truncate" ? bytes.subarray(0, Math.floor(bytes.length / 2)) : Buffer.alloc(bytes.length, 0x55),
        });
  if (!changed.ok) throw new Error(`${how} ${url}: HTTP ${changed.status}`);
}
