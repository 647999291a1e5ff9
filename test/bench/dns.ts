/**
 * DNS bench: queries/s and p50/p99 latency of the agent's clusterset.local server on loopback UDP,
 * 1,000 imported services, 64 queries in flight; and the pure resolver alone (the baseline: what the
 * socket and event loop cost on top). dnsmasq (the baseline) is not installed here: not
 * compared yet. A module of `bun run bench`; standalone: `bun test/bench/dns.ts` (prints JSON).
 */
import * as dnsPacket from "dns-packet";
import { buildZone, handleQuery, startDnsServer } from "../../internal/dns/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import type { BenchResult } from "./lib.ts";

const N = 1000;

interface DnsFigures {
  services: number;
  pureResolveQps: number;
  udpQps: number;
  p50ms: number;
  p99ms: number;
}

export async function measure(): Promise<DnsFigures> {
  const t: Topology = {
    clusters: [],
    nodes: [],
    serviceImports: Array.from({ length: N }, (_, i) => ({
      name: `demo/s${i}`,
      namespace: "demo",
      service: `s${i}`,
      type: "ClusterSetIP" as const,
      ips: [`241.0.${i >> 8}.${i & 255}`],
      ports: [{ name: "http", port: 80, protocol: "TCP" as const }],
      sessionAffinity: "None" as const,
      clusters: ["c1"],
    })),
    serviceEndpoints: [],
  };
  const zone = buildZone(t, "c1");
  const q = (i: number) =>
    dnsPacket.encode({
      type: "query",
      id: i & 0xffff,
      questions: [{ type: "A", name: `s${i % N}.demo.svc.clusterset.local` }],
    });

  const msgs = Array.from({ length: 1000 }, (_, i) => q(i));
  let t0 = performance.now();
  for (let r = 0; r < 20; r++) for (const m of msgs) handleQuery(m, zone, "udp");
  const pureQps = 20_000 / ((performance.now() - t0) / 1000);

  const dns = await startDnsServer({
    address: "127.0.0.1",
    port: 0,
    zone: () => zone,
    rateLimit: { qps: 1e9, burst: 1e9 },
  });
  const total = 20_000;
  const inflight = 64;
  const sent = new Map<number, number>();
  const lat: number[] = [];
  let next = 0;
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  type Sock = import("bun").udp.Socket<"buffer">;
  function send(s: Sock): void {
    const id = next++ & 0xffff;
    sent.set(id, performance.now());
    s.send(q(id), dns.port, "127.0.0.1");
  }
  const sock: Sock = await Bun.udpSocket<"buffer">({
    socket: {
      data(s, d) {
        const id = Buffer.from(d).readUInt16BE(0);
        const at = sent.get(id);
        if (at !== undefined) {
          lat.push(performance.now() - at);
          sent.delete(id);
        }
        if (lat.length >= total) done();
        else if (next < total) send(s as Sock);
      },
    },
  });
  try {
    t0 = performance.now();
    for (let i = 0; i < inflight; i++) send(sock);
    await finished;
    const secs = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    return {
      services: N,
      pureResolveQps: Math.round(pureQps),
      udpQps: Math.round(total / secs),
      p50ms: +lat[Math.floor(lat.length * 0.5)]!.toFixed(3),
      p99ms: +lat[Math.floor(lat.length * 0.99)]!.toFixed(3),
    };
  } finally {
    sock.close();
    await dns.stop();
  }
}

export async function run(): Promise<BenchResult[]> {
  const f = await measure();
  return [
    {
      name: `DNS queries/s over loopback UDP (${f.services} services, 64 in flight)`,
      value: f.udpQps,
      unit: "q/s",
      baseline: { name: "pure resolver, no socket", value: f.pureResolveQps },
    },
    { name: "DNS query latency p50 (UDP)", value: f.p50ms, unit: "ms" },
    { name: "DNS query latency p99 (UDP)", value: f.p99ms, unit: "ms" },
  ];
}

if (import.meta.main) console.log(JSON.stringify(await measure()));
