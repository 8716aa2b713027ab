/**
 * The secured servers of the TLS and token tests, started by the pytest harness
 * (tests/typescript/test_node_client.py) on the shape under test, with
 * certificates from two throwaway authorities (trustme): "trusted" signed the
 * server's and a client's certificate, "other" signed a client certificate the
 * servers do not trust.
 *
 * - STRATA_TLS_TARGET: `strata serve --auth token --tls-cert --tls-key`; its
 *   first admin token ("root", every namespace, made with `strata token create`)
 *   is STRATA_ROOT_TOKEN.
 * - STRATA_MTLS_TARGET: the same certificate and `--tls-client-ca` (the trusted
 *   authority), with `--auth none`: the certificate alone lets a client in.
 */
import { readFileSync } from "node:fs";
import { StrataClient, type StrataClientOptions } from "@strata/client";
import { unique } from "./env.js";

function given(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run these tests through tests/typescript (pytest), which starts the TLS servers`,
    );
  }
  return value;
}

const pem = (name: string) => readFileSync(given(name));

/** host:port of the TLS server with token auth. */
export const TLS_TARGET = given("STRATA_TLS_TARGET");
/** host:port of the server that requires a client certificate. */
export const MTLS_TARGET = given("STRATA_MTLS_TARGET");
/** The secret of the TLS server's admin token "root" (every namespace). */
export const ROOT_TOKEN = given("STRATA_ROOT_TOKEN");
/** The authority that signed the servers' certificate and the trusted client's. */
export const CA = pem("STRATA_TLS_CA");
/** An authority the servers do not know, and whose certificates they do not trust. */
export const OTHER_CA = pem("STRATA_TLS_OTHER_CA");
/** A client certificate and key from the trusted authority. */
export const CLIENT = { cert: pem("STRATA_TLS_CLIENT_CERT"), key: pem("STRATA_TLS_CLIENT_KEY") };
/** A client certificate and key from the other authority. */
export const FORGED = { cert: pem("STRATA_TLS_FORGED_CERT"), key: pem("STRATA_TLS_FORGED_KEY") };

/** A client of the TLS server that trusts its CA, as root unless `options` say otherwise. */
export function tlsClient(options: StrataClientOptions = {}): StrataClient {
  return new StrataClient({
    target: TLS_TARGET,
    tls: { ca: CA },
    token: ROOT_TOKEN,
    namespace: unique("ns"),
    ...options,
  });
}
