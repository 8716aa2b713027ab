/**
 * The README example (examples/readme.mjs) runs as written, against the server
 * under test: only its target and namespace are replaced (the namespace so that
 * it starts empty).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { TARGET, unique } from "./support/env.js";

test("examples/readme.mjs prints what the README says", async () => {
  const source = fileURLToPath(new URL("../../examples/readme.mjs", import.meta.url));
  const text = readFileSync(source, "utf8");
  assert.ok(text.includes('"127.0.0.1:50051"') && text.includes('namespace: "demo"'));
  // Beside the tests, inside the package, so that "@strata/client" resolves to it.
  const copy = fileURLToPath(new URL(`./readme-${unique("run")}.mjs`, import.meta.url));
  writeFileSync(
    copy,
    text.replace('"127.0.0.1:50051"', JSON.stringify(TARGET)).replace('namespace: "demo"', `namespace: "${unique("demo")}"`),
  );
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [copy], { timeout: 60_000 });
    assert.deepEqual(stdout.trim().split("\n"), [
      "n1 { title: 'bye' }",
      "someone else wrote; now at 2",
      "gone",
    ]);
  } finally {
    rmSync(copy, { force: true });
  }
});
