/**
 * A stand-in gRPC server (Node's http2) for unit tests of the client's own
 * logic: how it decodes a status's details, when it retries, and what metadata
 * and deadline it sends. Each call is answered by `answer`, which sees the
 * method and the request headers. Everything else, TLS included, is tested
 * against a real `strata serve`.
 */
import { type DescMessage, type MessageShape, create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { StatusSchema } from "@strata/client/gen/google/rpc/status_pb";

/** What the fake sends back: a response message, or a status with details. */
export type Answer =
  | { ok: Uint8Array }
  | { code: number; message: string; details?: { desc: DescMessage; value: object }[] };

/** One call the fake received. */
export interface Received {
  method: string;
  headers: http2.IncomingHttpHeaders;
}

export class FakeServer {
  readonly calls: Received[] = [];
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();

  constructor(private readonly answer: (call: Received, attempt: number) => Answer) {
    this.server = http2.createServer();
    this.server.on("session", (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.on("close", () => this.sessions.delete(session));
    });
    this.server.on("stream", (stream, headers) => {
      const call = { method: String(headers[":path"]), headers };
      this.calls.push(call);
      const attempt = this.calls.filter((c) => c.method === call.method).length;
      stream.on("data", () => undefined);
      stream.on("end", () => {
        const reply = this.answer(call, attempt);
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => {
          if ("ok" in reply) {
            stream.sendTrailers({ "grpc-status": "0" });
          } else {
            const status = create(StatusSchema, {
              code: reply.code,
              message: reply.message,
              details: (reply.details ?? []).map((d) =>
                anyPack(d.desc, create(d.desc, d.value as never) as MessageShape<DescMessage>),
              ),
            });
            stream.sendTrailers({
              "grpc-status": String(reply.code),
              "grpc-message": encodeURIComponent(reply.message),
              "grpc-status-details-bin": Buffer.from(toBinary(StatusSchema, status)).toString("base64"),
            });
          }
        });
        if ("ok" in reply) {
          const frame = Buffer.alloc(5 + reply.ok.length);
          frame.writeUInt32BE(reply.ok.length, 1);
          frame.set(reply.ok, 5);
          stream.end(frame);
        } else {
          stream.end();
        }
      });
    });
  }

  /** Listen on a free port of 127.0.0.1; resolves to host:port. */
  async listen(): Promise<string> {
    await new Promise<void>((done) => this.server.listen(0, "127.0.0.1", done));
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const session of this.sessions) session.destroy();
    await new Promise((done) => this.server.close(done));
  }
}
