/**
 * What the tests share: the server under test (started by the pytest harness,
 * tests/typescript/test_node_client.py, which sets STRATA_TARGET and
 * STRATA_SHAPE), fresh names so tests never see each other's data, and
 * assertions about errors.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { StrataClient, type StrataClientOptions, type StrataError } from "@strata/client";

/** host:port of the server under test. */
export const TARGET = process.env["STRATA_TARGET"] ?? "127.0.0.1:50051";

/** "sqlite" (SQLite, disk blobs, in-process cache) or "postgres" (PostgreSQL, S3, Redis). */
export const SHAPE = process.env["STRATA_SHAPE"] ?? "sqlite";

/** A name no other test uses: a letter, then hex. */
export function unique(prefix = "t"): string {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** A client of the server under test in a namespace of its own (closed by the caller). */
export function newClient(options: StrataClientOptions = {}): StrataClient {
  return new StrataClient({ target: TARGET, namespace: unique("ns"), ...options });
}

/** The error `promise` rejects with, checked to be a `type` (and a StrataError). */
export async function rejection<T extends StrataError>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
): Promise<T> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${String(error)}`);
    return error;
  }
  assert.fail(`expected a ${type.name}, but the call succeeded`);
}

/** Everything an async iterable yields. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Wait until `check` resolves truthy (polling), or fail after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false>,
  timeoutMs = 15_000,
  what = "the condition",
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (performance.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
