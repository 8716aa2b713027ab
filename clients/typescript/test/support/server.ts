/**
 * A `strata serve` of the tests' own, for what the shared server cannot do:
 * restarting it under a following reader, settings of its own (short idle
 * limits, a lock timeout), a backend taken away, a blob damaged in its store.
 *
 * It serves a fresh database of the shape under test: on the production shape
 * the PostgreSQL database the pytest harness made for these servers
 * (STRATA_OWN_DATABASE_URL; they share it as replicas would, each test in a
 * namespace of its own), on the embedded shape an SQLite file in its work
 * directory. Without options it has no Redis and keeps blobs on local disk;
 * `shapeBlobs` puts them where the shape does (a bucket of its own on the
 * harness's S3 endpoint, STRATA_OWN_S3, on the production shape). It is
 * stopped by its PID.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SHAPE, unique } from "./env.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../../..");

/** The command that runs the server (the harness passes the venv's python). */
function command(): string[] {
  const given = process.env["STRATA_SERVER_COMMAND"];
  if (given) return JSON.parse(given) as string[];
  return [join(ROOT, ".venv/bin/python"), "-m", "strata_server", "serve"];
}

/** The Python that runs the server (it has the database drivers the tests' helpers use). */
export function python(): string {
  return command()[0] as string;
}

/** A TCP port of 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, "127.0.0.1", done));
  const { port } = probe.address() as { port: number };
  await new Promise((done) => probe.close(done));
  return port;
}

export interface OwnServerOptions {
  /** More settings (STRATA_* variables) for the server. */
  env?: Record<string, string>;
  /** Keep blobs where the shape does (S3 on the production shape), not on local disk. */
  shapeBlobs?: boolean;
  /** libpq options for the PostgreSQL sessions (the DSN's `options`), e.g. "-c lock_timeout=100". */
  pgOptions?: string;
  /** Serve Prometheus metrics, for {@link OwnServer.rpcs}. */
  metrics?: boolean;
}

/** The S3 settings the harness gives for servers of the production shape (no bucket). */
function s3Settings(): Record<string, string> | undefined {
  const given = process.env["STRATA_OWN_S3"];
  return given ? (JSON.parse(given) as Record<string, string>) : undefined;
}

export class OwnServer {
  readonly workdir = mkdtempSync(join(tmpdir(), "strata-node-"));
  readonly databaseUrl: string;
  /** The S3 endpoint (host:port) and bucket of its blobs; undefined when they are on disk. */
  readonly s3: { endpoint: string; bucket: string } | undefined;
  port = 0;
  private metricsPort = 0;
  private process: ChildProcess | undefined;
  private readonly env: Record<string, string>;

  constructor(private readonly options: OwnServerOptions = {}) {
    const shared = process.env["STRATA_OWN_DATABASE_URL"];
    const url = shared?.startsWith("postgres") ? shared : `sqlite:///${join(this.workdir, "strata.db")}`;
    this.databaseUrl = options.pgOptions && url.startsWith("postgres")
      ? `${url}${url.includes("?") ? "&" : "?"}options=${encodeURIComponent(options.pgOptions)}`
      : url;
    this.env = { ...(options.env ?? {}) };
    const s3 = options.shapeBlobs && SHAPE === "postgres" ? s3Settings() : undefined;
    if (s3 !== undefined) {
      const bucket = unique("strata");
      Object.assign(this.env, s3, { STRATA_S3_BUCKET: bucket });
      this.s3 = { endpoint: s3["STRATA_S3_ENDPOINT"] as string, bucket };
    } else if (options.shapeBlobs && SHAPE === "postgres") {
      throw new Error("STRATA_OWN_S3 is not set: run these tests through tests/typescript (pytest)");
    }
  }

  /** host:port to dial. */
  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Where the server keeps local files (blobs/ when they are on disk). */
  get dataDir(): string {
    return join(this.workdir, "data");
  }

  /** Start the server (on `port`, or a free one) and wait until it serves. */
  async start(port = this.port): Promise<void> {
    const portFile = join(this.workdir, "port");
    rmSync(portFile, { force: true });
    if (this.options.metrics && this.metricsPort === 0) this.metricsPort = await freePort();
    const metrics: Record<string, string> = this.options.metrics
      ? { STRATA_METRICS_LISTEN: `127.0.0.1:${this.metricsPort}` }
      : {};
    const [program, ...args] = command();
    const log = openSync(join(this.workdir, "server.log"), "a");
    const child = spawn(program as string, args, {
      cwd: this.workdir,
      stdio: ["ignore", log, log],
      env: {
        ...process.env,
        STRATA_DATABASE_URL: this.databaseUrl,
        STRATA_LISTEN: `127.0.0.1:${port}`,
        STRATA_PORT_FILE: portFile,
        STRATA_MIGRATE: "true",
        STRATA_LOG_LEVEL: "warning",
        STRATA_CONSOLE_LISTEN: "off",
        ...metrics,
        ...this.env,
      },
    });
    this.process = child;
    const deadline = performance.now() + 60_000;
    while (!existsSync(portFile) || readFileSync(portFile, "utf8").trim() === "") {
      if (child.exitCode !== null) throw new Error(`strata exited ${child.exitCode}:\n${this.log()}`);
      if (performance.now() > deadline) throw new Error(`strata did not start:\n${this.log()}`);
      await new Promise((done) => setTimeout(done, 50));
    }
    this.port = Number(readFileSync(portFile, "utf8").trim());
  }

  /**
   * How many calls of `method` (e.g. "RecordService/UpdateRecord") this server
   * has answered with status `code` (e.g. "UNAVAILABLE"), by its own count
   * (the strata_rpcs Prometheus counter): the attempts a client really sent.
   */
  async rpcs(method: string, code: string): Promise<number> {
    if (!this.options.metrics) throw new Error("this server was started without metrics");
    const response = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`);
    const text = await response.text();
    let total = 0;
    for (const line of text.split("\n")) {
      if (!line.startsWith("strata_rpcs_total{")) continue;
      const labels = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
      if (labels.includes(`method="${method}"`) && labels.includes(`code="${code}"`)) {
        total += Number(line.slice(line.lastIndexOf("}") + 1).trim());
      }
    }
    return total;
  }

  /** SIGKILL (the crash path) and wait for the process to be gone. */
  async kill(): Promise<void> {
    const child = this.process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGKILL");
    await exited;
  }

  /** Everything the server printed so far. */
  log(): string {
    const path = join(this.workdir, "server.log");
    return existsSync(path) ? readFileSync(path, "utf8") : "";
  }

  /** Kill the server and remove its work directory. */
  async close(): Promise<void> {
    await this.kill();
    rmSync(this.workdir, { recursive: true, force: true });
  }
}
