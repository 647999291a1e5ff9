/**
 * `kosmosctl check` speed: a full pod matrix of 24 endpoints (552 ordered pairs, icmp + tcp, both
 * families where both ends have them) in a lab of 3 clusters × 4 nodes × 2 pods (12 real agents).
 * Target: ≤ 20 s on the 2-core bench machine.
 *
 *   bun test/bench/netcheck.ts
 */
import { labDown, labUp } from "../../internal/lab/lab.ts";
import { parseLabConfig } from "../../internal/lab/config.ts";
import { AgentExecutor, type CheckOptions, labInventory, runCheck } from "../../internal/netcheck/index.ts";
import { type BenchResult, percentile, printResults } from "./lib.ts";

const REPS = 3;

export async function run(): Promise<BenchResult[]> {
  const name = `bnc${process.pid.toString(36)}`.slice(0, 12);
  const config = parseLabConfig({
    clusters: [
      {
        name: "c1",
        networkType: "p2p",
        ipFamily: "dual",
        nodes: 4,
        podsPerNode: 2,
        podCIDRs: ["10.244.0.0/16", "fd10:1::/48"],
        globalCIDRs: { "10.244.0.0/16": "242.1.0.0/16" },
      },
      {
        name: "c2",
        networkType: "gateway",
        ipFamily: "dual",
        nodes: 4,
        podsPerNode: 2,
        gatewayCandidates: 2,
      },
      {
        name: "c3",
        networkType: "p2p",
        ipFamily: "ipv4",
        nodes: 4,
        podsPerNode: 2,
        podCIDRs: ["10.244.0.0/16"],
        globalCIDRs: { "10.244.0.0/16": "242.3.0.0/16" },
      },
    ],
  });
  try {
    // Every agent seeded directly: the bench measures the check, not gossip convergence.
    const handle = await labUp(name, config, { seedCount: 12 });
    const inv = labInventory(handle.plan);
    const exec = new AgentExecutor(inv.agents);
    const opts: CheckOptions = {
      mode: "pod",
      protocols: ["icmp", "tcp"],
      families: [4, 6],
      concurrency: Number(process.env.KOSMOS_BENCH_CONCURRENCY ?? 128),
      timeoutSec: 2,
      intraCluster: true,
      dnsName: "kubernetes.default.svc.cluster.local",
    };
    const secs: number[] = [];
    let pairs = 0;
    let probes = 0;
    let failed = 0;
    for (let i = 0; i < REPS; i++) {
      const t0 = performance.now();
      const rep = await runCheck(inv, opts, exec);
      secs.push((performance.now() - t0) / 1000);
      pairs = rep.total;
      probes = rep.probes;
      failed += rep.failed;
      for (const r of rep.results.filter((x) => !x.ok).slice(0, 5)) {
        const bad = r.probes.filter((p) => !p.ok).map((p) => `${p.proto} ${p.ip}: ${p.detail} (${p.ms} ms)`);
        process.stderr.write(`failed: ${r.key} ${bad.join("; ")} | ${r.diagnosis?.[0]?.message ?? ""}\n`);
      }
    }
    const p50 = percentile(secs, 50);
    const worst = Math.max(...secs);
    return [
      {
        name: `check pod matrix: ${pairs} pairs / ${probes} probes (24 endpoints), median of ${REPS}`,
        value: p50,
        unit: "s",
        target: "≤ 20 s",
        ok: p50 <= 20 && failed === 0,
      },
      { name: "check pod matrix: slowest run", value: worst, unit: "s", target: "≤ 20 s", ok: worst <= 20 },
      {
        name: "check pod matrix: failed pairs over all runs (healthy lab)",
        value: failed,
        unit: "pairs",
        target: "0",
        ok: failed === 0,
      },
    ];
  } finally {
    await labDown(name);
  }
}

if (import.meta.main) printResults(await run());
