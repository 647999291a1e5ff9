/**
 * MCS propagation in the gossip simulator (standalone: `bun test/bench/mcs-propagation.ts [n]`):
 * virtual time from the controller seeding a new service_endpoints row (a backend became Ready) into
 * 3 agents (as the Seeder does) until every agent's replica holds it — from then on each agent's
 * DNS answers it and its planner programs it (both read the replica). LAN latency 0.2–2 ms/hop.
 */
import { Sim } from "../../internal/gossip/index.ts";
import type { ReplicatedRow } from "../../internal/store/index.ts";

const n = Number(process.argv[2] ?? 1000);
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
console.log(
  JSON.stringify({ agents: n, p99Ms: Math.max(...p99s).toFixed(1), maxMs: Math.max(...maxes).toFixed(1) }),
);
