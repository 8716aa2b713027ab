import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { createClient } from "@connectrpc/connect";
import { RecordService } from "@strata/client/gen/strata/v1/records_pb";
import net from "node:net";
const port = 43617;
for (const noDelay of [false, true, false, true]) {
  const nodeOptions = noDelay ? { createConnection: () => net.connect({ host: "127.0.0.1", port, noDelay: true }) } : {};
  const transport = createGrpcTransport({ baseUrl: "http://127.0.0.1:" + port, nodeOptions });
  const c = createClient(RecordService, transport);
  await c.getRecord({ namespace: "demo", collection: "notes", id: "n1" });
  const t1 = performance.now();
  for (let i = 0; i < 200; i++) await c.getRecord({ namespace: "demo", collection: "notes", id: "n1" });
  console.log("noDelay", noDelay, "200 gets", performance.now() - t1);
}
