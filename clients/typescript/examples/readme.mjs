// The example of the client's README (and of issue 19), as written: run it
// against `make run` with `node examples/readme.mjs` (after `make ts-build`).
import { StrataClient, NotFoundError, VersionConflictError } from "@strata/client";

const client = new StrataClient({ target: "127.0.0.1:50051", namespace: "demo" });
const notes = client.records("notes");
await notes.create({ recordId: "n1", data: { title: "hello", tags: ["a", 1, null, true] } });
const n = await notes.get("n1");                 // n.data is a plain JSON object
await notes.update("n1", { data: { title: "bye" }, expectedVersion: n.version });
for await (const r of notes.list({ filter: 'data.title = "bye"', pageSize: 50 })) console.log(r.id, r.data);
try { await notes.update("n1", { data: {}, expectedVersion: n.version }); }
catch (e) { if (e instanceof VersionConflictError) console.log("someone else wrote; now at", e.currentVersion); }
try { await notes.get("missing"); } catch (e) { if (e instanceof NotFoundError) console.log("gone"); }
