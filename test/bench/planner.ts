/**
 * Planner benchmark: one node's plan in a 100-cluster x 1,000-node topology (100k nodes), and an
 * unchanged re-plan at 1,000 peers. Baseline: a JSON deep copy of the same topology, measured in
 * the same run (the planner must read the whole snapshot once, so a copy is the natural yardstick).
 *
 * Run directly: bun test/bench/planner.ts
 */
import { plan } from "../../internal/planner/index.ts";
import { type Cluster, type Node, type Topology, validateTopology } from "../../internal/topology/index.ts";
import { type BenchResult, percentile, printResults } from "./lib.ts";

export interface GenerateOptions {
  clusters: number;
  nodesPerCluster: number;
  /** Every n-th cluster is in gateway mode (0: none). Default 10. */
  gatewayEvery?: number;
  /** Gateway candidates per gateway cluster. Default 2. */
  candidates?: number;
}

/**
 * A synthetic, valid topology: cluster k has pod CIDR 10.k.0.0/16 (a /26 per node, so up to 1,024
 * nodes), service CIDR 172.16.k.0/24, and node i (global index) underlay 11.x.y.z with unique low
 * 24 bits (no overlay clashes). Addresses are never used for traffic.
 */
export function generateTopology(o: GenerateOptions): Topology {
  if (o.clusters > 256 || o.nodesPerCluster > 1024) throw new Error("at most 256 clusters x 1024 nodes");
  const gatewayEvery = o.gatewayEvery ?? 10;
  const candidates = o.candidates ?? 2;
  const clusters: Cluster[] = [];
  const nodes: Node[] = [];
  let g = 0;
  for (let k = 0; k < o.clusters; k++) {
    const gateway = gatewayEvery > 0 && k % gatewayEvery === gatewayEvery - 1;
    const name = `c${k}`;
    clusters.push({
      name,
      networkType: gateway ? "gateway" : "p2p",
      ipFamily: "ipv4",
      podCIDRs: [`10.${k}.0.0/16`],
      serviceCIDRs: [`172.16.${k}.0/24`],
      globalCIDRs: {},
      bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
      localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
    });
    for (let i = 0; i < o.nodesPerCluster; i++, g++) {
      const sub = i * 64;
      nodes.push({
        name: `${name}-n${i}`,
        cluster: name,
        ipv4: `11.${(g >> 16) & 255}.${(g >> 8) & 255}.${g & 255}`,
        podCIDRs: [`10.${k}.${sub >> 8}.${sub & 255}/26`],
        gatewayCandidate: gateway && i < candidates,
      });
    }
  }
  return { clusters, nodes };
}

function gc(): void {
  Bun.gc(true);
}

function timeMs(f: () => unknown): number {
  const t = performance.now();
  f();
  return performance.now() - t;
}

export async function run(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const big = generateTopology({ clusters: 100, nodesPerCluster: 1000 });
  const copyMs = timeMs(() => JSON.parse(JSON.stringify(big)));
  // Cold plan of a P2P node: sees ~99k peers (every node of 89 P2P clusters + 10 gateways).
  gc();
  const rss0 = process.memoryUsage().rss;
  let peers = 0;
  const coldMs = timeMs(() => {
    peers = plan({ topology: big, self: "c0-n0" }).neighbors.length;
  });
  const rss1 = process.memoryUsage().rss;
  results.push({
    name: `plan 1 node of 100k (cold, ${peers} peers)`,
    value: coldMs,
    unit: "ms",
    baseline: { name: "JSON deep copy (ms)", value: copyMs },
    target: "<= 1000 ms",
    ok: coldMs <= 1000,
  });
  const rssMb = (rss1 - rss0) / 1e6;
  results.push({
    name: "plan 1 node of 100k: RSS delta",
    value: rssMb,
    unit: "MB",
    target: "<= 300 MB",
    ok: rssMb <= 300,
  });
  // After the cold plan, so that the plan figure includes JIT warm-up of the parsers.
  const validateMs = timeMs(() => validateTopology(big));
  results.push({
    name: "validateTopology 100k nodes",
    value: validateMs,
    unit: "ms",
    baseline: { name: "JSON deep copy (ms)", value: copyMs },
  });

  const warm: number[] = [];
  for (let i = 0; i < 5; i++) warm.push(timeMs(() => plan({ topology: big, self: "c0-n0" })));
  results.push({
    name: "plan 1 node of 100k (warm, median of 5)",
    value: percentile(warm, 50),
    unit: "ms",
    baseline: { name: "JSON deep copy (ms)", value: copyMs },
    target: "<= 1000 ms",
    ok: percentile(warm, 50) <= 1000,
  });
  const gwMs = timeMs(() => plan({ topology: big, self: "c9-n5" }));
  results.push({ name: "plan non-gateway node of a gateway cluster in 100k", value: gwMs, unit: "ms" });

  // Unchanged re-plan at 1,000 peers: 11 P2P clusters x 100 nodes.
  const small = generateTopology({ clusters: 11, nodesPerCluster: 100, gatewayEvery: 0 });
  const smallCopy: number[] = [];
  for (let i = 0; i < 20; i++) smallCopy.push(timeMs(() => JSON.parse(JSON.stringify(small))));
  plan({ topology: small, self: "c0-n0" });
  const re: number[] = [];
  let smallPeers = 0;
  for (let i = 0; i < 20; i++) {
    re.push(
      timeMs(() => {
        smallPeers = plan({ topology: small, self: "c0-n0" }).neighbors.length;
      }),
    );
  }
  const p50 = percentile(re, 50);
  results.push({
    name: `re-plan unchanged (${smallPeers} peers, median of 20)`,
    value: p50,
    unit: "ms",
    baseline: { name: "JSON deep copy (ms)", value: percentile(smallCopy, 50) },
    target: "<= 100 ms",
    ok: p50 <= 100,
  });
  return results;
}

if (import.meta.main) {
  printResults(await run());
}
