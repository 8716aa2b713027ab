/**
 * A `strata serve` of the tests' own, for what the shared server cannot do:
 * restarting it under a following reader. It serves a fresh database of the
 * shape under test (STRATA_OWN_DATABASE_URL from the pytest harness; else a
 * SQLite file in its work directory), without Redis and with blobs on local
 * disk, and is stopped by its PID.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../../..");

/** The command that runs the server (the harness passes the venv's python). */
function command(): string[] {
  const given = process.env["STRATA_SERVER_COMMAND"];
  if (given) return JSON.parse(given) as string[];
  return [join(ROOT, ".venv/bin/python"), "-m", "strata_server", "serve"];
}

export class OwnServer {
  readonly workdir = mkdtempSync(join(tmpdir(), "strata-node-"));
  readonly databaseUrl: string;
  port = 0;
  private process: ChildProcess | undefined;

  constructor() {
    this.databaseUrl =
      process.env["STRATA_OWN_DATABASE_URL"] ?? `sqlite:///${join(this.workdir, "strata.db")}`;
  }

  /** host:port to dial. */
  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Start the server (on `port`, or a free one) and wait until it serves. */
  async start(port = this.port): Promise<void> {
    const portFile = join(this.workdir, "port");
    rmSync(portFile, { force: true });
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
