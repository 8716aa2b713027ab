import { createGrpcTransport } from "@connectrpc/connect-node";
import { createClient } from "@connectrpc/connect";
import { RecordService } from "@strata/client/gen/strata/v1/records_pb";
const port = 43617;
const transport = createGrpcTransport({ baseUrl: "http://127.0.0.1:" + port });
const c = createClient(RecordService, transport);
for (let i = 0; i < 50; i++) await c.getRecord({ namespace: "demo", collection: "notes", id: "n1" });
const cpu0 = process.cpuUsage(); const t1 = performance.now();
const lat = [];
for (let i = 0; i < 3000; i++) { const s = performance.now(); await c.getRecord({ namespace: "demo", collection: "notes", id: "n1" }); lat.push(performance.now() - s); }
const cpu = process.cpuUsage(cpu0);
lat.sort((a,b)=>a-b);
console.log("500 gets ms", (performance.now() - t1).toFixed(0), "cpu ms", ((cpu.user+cpu.system)/1000).toFixed(0), "p50", lat[1500].toFixed(2), "p10", lat[300].toFixed(2));
