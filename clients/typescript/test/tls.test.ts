/**
 * TLS, mTLS and token auth over TLS, against real `strata serve` processes with
 * certificates from test authorities (support/secure.ts): who gets in, and the
 * error a caller sees when the client and the server do not agree.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  StrataClient,
  type StrataClientOptions,
  UnauthenticatedError,
  UnavailableError,
} from "@strata/client";
import { collect, rejection, unique } from "./support/env.js";
import {
  CA,
  CLIENT,
  FORGED,
  MTLS_TARGET,
  OTHER_CA,
  ROOT_TOKEN,
  TLS_TARGET,
  tlsClient,
} from "./support/secure.js";

/** Run `use` with a client made from `options`, closed afterwards. */
async function using<T>(options: StrataClientOptions, use: (client: StrataClient) => Promise<T>): Promise<T> {
  const client = new StrataClient({ namespace: unique("ns"), ...options });
  try {
    return await use(client);
  } finally {
    client.close();
  }
}

/** A record written and read back, and a transcript read as a server stream. */
async function roundTrip(client: StrataClient): Promise<void> {
  const notes = client.records(unique("c"));
  await notes.create({ recordId: "n1", data: { over: "tls" } });
  assert.deepEqual((await notes.get("n1")).data, { over: "tls" });
  const id = unique("t");
  await client.transcripts.create({ transcriptId: id });
  await client.transcripts.append(id, ["one", "two"]);
  const entries = await collect(client.transcripts.read(id));
  assert.deepEqual(
    entries.map((e) => e.content),
    ["one", "two"],
  );
}

describe("TLS (--tls-cert, --tls-key) with token auth", () => {
  test("a client trusting the server's CA gets in, as host:port and as an https:// URL", async () => {
    const client = tlsClient();
    try {
      await roundTrip(client);
    } finally {
      client.close();
    }
    await using({ target: `https://${TLS_TARGET}`, tls: { ca: CA }, token: ROOT_TOKEN }, roundTrip);
  });

  test("a CA that did not sign the server's certificate fails the handshake with a clear UnavailableError", async () => {
    for (const tls of [{ ca: OTHER_CA }, true]) {
      const error = await using({ target: TLS_TARGET, tls, token: ROOT_TOKEN }, (client) =>
        rejection(client.records("c").get("r"), UnavailableError),
      );
      assert.match(error.message, new RegExp(`^TLS handshake with ${TLS_TARGET} failed: `));
      assert.match(error.message, /give the CA that signed it as tls\.ca/);
      assert.equal(error.code, "UNAVAILABLE");
    }
  });

  test("a certificate that does not name the host dialled is refused, naming tls.serverName", async () => {
    const error = await using(
      { target: TLS_TARGET, tls: { ca: CA, serverName: "elsewhere.test" }, token: ROOT_TOKEN },
      (client) => rejection(client.records("c").get("r"), UnavailableError),
    );
    assert.match(error.message, /does not name the host dialled.*tls\.serverName/);
  });

  test("a plaintext client is refused with an UnavailableError naming the tls option", async () => {
    const error = await using({ target: TLS_TARGET, token: ROOT_TOKEN }, (client) =>
      rejection(client.records("c").get("r"), UnavailableError),
    );
    assert.match(error.message, /closed the connection without answering: if it serves TLS, set the `tls` option/);
  });

  test("the bearer token goes over TLS: root gets in and is the audit actor; no token or a wrong one is refused", async () => {
    const client = tlsClient();
    try {
      const notes = client.records(unique("c"));
      await notes.create({ recordId: "a", data: {} });
      const [entry] = await collect(client.admin.auditEntries({ entity: "record", entityId: `${notes.collection}/a` }));
      assert.equal(entry?.actor, "root");
    } finally {
      client.close();
    }
    for (const token of [undefined, "not-a-token", `${ROOT_TOKEN}x`]) {
      const error = await using({ target: TLS_TARGET, tls: { ca: CA }, ...(token ? { token } : {}) }, (c) =>
        rejection(c.records("c").get("r"), UnauthenticatedError),
      );
      assert.equal(error.code, "UNAUTHENTICATED");
    }
  });
});

describe("mTLS (--tls-client-ca)", () => {
  test("a client certificate signed by the trusted CA gets in", async () => {
    await using({ target: MTLS_TARGET, tls: { ca: CA, ...CLIENT } }, roundTrip);
  });

  test("without a client certificate the server refuses the connection: an UnavailableError naming mTLS", async () => {
    const error = await using({ target: MTLS_TARGET, tls: { ca: CA } }, (client) =>
      rejection(client.records("c").get("r"), UnavailableError),
    );
    assert.match(
      error.message,
      new RegExp(`^${MTLS_TARGET} closed the connection after the TLS handshake without answering: it requires a client certificate \\(mTLS\\)`),
    );
  });

  test("a client certificate from an authority the server does not trust is refused the same way", async () => {
    const error = await using({ target: MTLS_TARGET, tls: { ca: CA, ...FORGED } }, (client) =>
      rejection(client.records("c").get("r"), UnavailableError),
    );
    assert.match(error.message, /requires a client certificate \(mTLS\)/);
  });

  test("a refused call fails the same way with or without retries", async () => {
    for (const retry of [{ maxAttempts: 1 }, { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 }]) {
      const error = await using({ target: MTLS_TARGET, tls: { ca: CA }, retry }, (client) =>
        rejection(client.admin.serverInfo(), UnavailableError),
      );
      assert.match(error.message, /client certificate \(mTLS\)/);
    }
  });
});
