/**
 * MCS propagation in the gossip simulator (standalone: `bun test/bench/mcs-propagation.ts [n]`):
 * virtual time from the controller seeding a new service_endpoints row (a backend became Ready) into
 * 3 agents (as the Seeder does) until every agent's replica holds it — from then on each agent's
 * DNS answers it and its planner programs it (both read the replica). LAN latency 0.2–2 ms/hop.
 * A module of `bun run bench` (1,000 agents, or $MCS_BENCH_AGENTS); standalone it prints JSON.
 */
import { Sim } from "../../internal/gossip/index.ts";
import type { ReplicatedRow } from "../../internal/store/index.ts";
import type { BenchResult } from "./lib.ts";

/** Worst p99 and worst max (virtual ms) over 5 changes, each seeded into 3 of `n` agents. */
export function measure(n: number): { agents: number; p99Ms: number; maxMs: number } {
  const sim = new Sim({ seed: 7 });
  const names = Array.from({ length: n }, (_, i) => `n${i}`);
  for (const x of names) sim.addNode(x, { members: names, settled: true });
  sim.run(3000);

  const delays: number[] = [];
  for (let c = 0; c < 5; c++) {
    const row: ReplicatedRow = {
      table: "service_endpoints",
      key: `demo/echo/c1/echo-${c}`,
      owner: "controller",
      version: (Date.now() + c) * 1024,
      deleted: false,
      data: {
        name: `demo/echo/c1/echo-${c}`,
        namespace: "demo",
        service: "echo",
        cluster: "c1",
        slice: `echo-${c}`,
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        endpoints: [{ addresses: [`10.244.1.${c + 5}`], ready: true, node: "c1-n1" }],
      },
    };
    const t0 = sim.time;
    const seen = new Set<string>();
    const times: number[] = [];
    for (const x of names) {
      sim.node(x).onRows((rows) => {
        if (!seen.has(x) && rows.some((r) => r.key === row.key)) {
          seen.add(x);
          times.push(sim.time - t0);
        }
      });
    }
    const seeds = [names[c % n]!, names[(c + 1) % n]!, names[(c + 2) % n]!];
    for (const s of seeds) {
      sim.replica(s).merge([row]);
      seen.add(s);
      times.push(0);
      sim.node(s).publish([row]);
    }
    sim.runUntil(() => seen.size === n, 30_000, 5);
    times.sort((a, b) => a - b);
    delays.push(times[Math.floor(times.length * 0.99)] ?? Number.POSITIVE_INFINITY, times[times.length - 1]!);
    if (seen.size < n) console.log(`change ${c}: only ${seen.size}/${n} agents`);
    sim.run(500);
  }
  const p99s = delays.filter((_, i) => i % 2 === 0);
  const maxes = delays.filter((_, i) => i % 2 === 1);
  return { agents: n, p99Ms: Math.max(...p99s), maxMs: Math.max(...maxes) };
}

export async function run(): Promise<BenchResult[]> {
  const f = measure(Number(process.env.MCS_BENCH_AGENTS ?? 1000));
  return [
    {
      name: `MCS endpoint propagation p99 to all ${f.agents} agents (gossip sim, virtual time)`,
      value: f.p99Ms,
      unit: "ms",
    },
    { name: `  … max over ${f.agents} agents`, value: f.maxMs, unit: "ms" },
  ];
}

if (import.meta.main) {
  const f = measure(Number(process.argv[2] ?? 1000));
  console.log(JSON.stringify({ agents: f.agents, p99Ms: f.p99Ms.toFixed(1), maxMs: f.maxMs.toFixed(1) }));
}
