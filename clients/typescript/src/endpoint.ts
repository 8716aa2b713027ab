/**
 * The sockets under a connection: how one is opened for a target (plaintext or
 * TLS), and why a server refused one.
 *
 * A refusal reaches a call in a form that does not say what happened: a server
 * that wants a client certificate (mTLS) and gets none, or a TLS server spoken to
 * in plaintext, closes the socket without sending a byte, and the call's HTTP/2
 * stream ends CANCELLED as if the caller had cancelled it; a failed certificate
 * check ends UNAVAILABLE with Node's bare "unable to verify the first
 * certificate". {@link Refusals} remembers what each socket saw, so that the
 * connection's call path can throw an UnavailableError that names the server and
 * the likely fix, as gRPC's own clients report these cases.
 */
import type { SecureClientSessionOptions } from "node:http2";
import { type Socket, connect as connectTcp, isIP } from "node:net";
import { type TLSSocket, connect as connectTls } from "node:tls";
import { type StrataError, UnavailableError } from "./errors.js";

/** TLS settings: PEM text or bytes, as Node's `tls.connect` takes them. */
export interface TlsOptions {
  /** CA certificate(s) to trust instead of the system's (a private CA). */
  ca?: string | Buffer | (string | Buffer)[];
  /** Client certificate chain, for servers that ask for one (mTLS). */
  cert?: string | Buffer;
  /** The client certificate's private key. */
  key?: string | Buffer;
  /** The name to check the server's certificate against, when not the target's host. */
  serverName?: string;
}

/** One socket's refusal: when it happened, what to tell the caller, and Node's error if any. */
interface Refusal {
  at: number;
  message: string;
  error: Error | undefined;
}

/** What the sockets of one connection were refused, for the calls that failed because of it. */
export class Refusals {
  private last: Refusal | undefined;

  constructor(private readonly target: string) {}

  /** Watch a new socket: its failed TLS handshake, or its close before the server sent a byte. */
  watch(socket: Socket | TLSSocket, secure: boolean): void {
    let stage: "connecting" | "handshaking" | "open" = "connecting";
    socket.once("connect", () => {
      stage = secure ? "handshaking" : "open";
    });
    socket.once("secureConnect", () => {
      stage = "open";
    });
    socket.once("error", (error: Error) => {
      if (stage !== "handshaking") return; // not reachable at all: Node's message says it
      this.last = {
        at: performance.now(),
        message: `TLS handshake with ${this.target} failed: ${error.message}${certificateHint(error)}`,
        error,
      };
    });
    socket.once("end", () => {
      if (socket.bytesRead > 0) return; // it spoke HTTP/2: a close after that is no refusal
      const message = secure
        ? `${this.target} closed the connection after the TLS handshake without answering: it ` +
          "requires a client certificate (mTLS) signed by an authority it trusts, and none was " +
          "given (tls.cert and tls.key) or it does not trust this one"
        : `${this.target} closed the connection without answering: if it serves TLS, set the ` +
          "`tls` option (or use an https:// target)";
      this.last = { at: performance.now(), message, error: undefined };
    });
  }

  /**
   * The error a call that started at `startedAt` (a `performance.now()`) throws
   * instead of `error`: an UnavailableError that says what was refused, when a
   * socket was refused since the call started and `error` is how that refusal
   * reached the call; otherwise `error` itself.
   */
  explain(error: StrataError, startedAt: number, signal: AbortSignal | undefined): StrataError {
    const refusal = this.last;
    if (refusal === undefined || refusal.at < startedAt || signal?.aborted || error.reason !== "") {
      return error;
    }
    const caused =
      refusal.error === undefined
        ? error.code === "CANCELLED"
        : error.code === "UNAVAILABLE" && causedBy(error, refusal.error);
    return caused ? new UnavailableError(refusal.message, { cause: error }) : error;
  }
}

/** A hint for the certificate checks a caller gets wrong, after Node's message. */
function certificateHint(error: Error): string {
  const code = String((error as { code?: unknown }).code ?? "");
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return " (the certificate does not name the host dialled: dial a name it holds, or set tls.serverName)";
  }
  if (/CERT|UNABLE_TO_VERIFY|SELF_SIGNED/.test(code)) {
    return " (the server's certificate is not signed by an authority the client trusts: " +
      "give the CA that signed it as tls.ca)";
  }
  return "";
}

function causedBy(error: Error, cause: Error): boolean {
  const seen = new Set<unknown>();
  for (let link: unknown = error; link instanceof Error && !seen.has(link); link = link.cause) {
    if (link === cause) return true;
    seen.add(link);
  }
  return false;
}

/**
 * The base URL and Node `http2.connect` options of a target. The socket is made
 * here (`createConnection`) to turn off Nagle's algorithm: HTTP/2 sends small
 * frames (window updates, a unary call's headers) that would otherwise wait for
 * the peer's delayed ACK. Each socket is watched by `refusals`.
 */
export function endpoint(
  target: string,
  tls: boolean | TlsOptions | undefined,
  refusals: Refusals,
): { baseUrl: string; nodeOptions: SecureClientSessionOptions } {
  if (!target) throw new TypeError("target must not be empty");
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(target);
  const secure = hasScheme ? target.startsWith("https://") : Boolean(tls);
  if (hasScheme && tls && !secure) {
    throw new TypeError("tls is set but the target is an http:// URL; use https:// or host:port");
  }
  const baseUrl = hasScheme ? target : `${secure ? "https" : "http"}://${target}`;
  const url = new URL(baseUrl);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || (secure ? 443 : 80));
  const given = typeof tls === "object" ? tls : {};
  const nodeOptions: SecureClientSessionOptions = {
    createConnection: () => {
      const socket = secure
        ? connectTls({
            host,
            port,
            ALPNProtocols: ["h2"],
            servername: given.serverName ?? (isIP(host) ? undefined : host),
            ...(given.ca === undefined ? {} : { ca: given.ca }),
            ...(given.cert === undefined ? {} : { cert: given.cert }),
            ...(given.key === undefined ? {} : { key: given.key }),
          })
        : connectTcp({ host, port });
      socket.setNoDelay(true);
      refusals.watch(socket, secure);
      return socket;
    },
  };
  return { baseUrl, nodeOptions };
}
