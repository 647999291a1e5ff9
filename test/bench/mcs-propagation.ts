/**
 * MCS propagation in the gossip simulator (standalone: `bun test/bench/mcs-propagation.ts [n]`):
 * virtual time from the controller seeding a new service_endpoints row (a backend became Ready) into
 * 3 agents (as the Seeder does) until every agent's replica holds it — from then on each agent's
 * DNS answers it and its planner programs it (both read the replica). LAN latency 0.2–2 ms/hop.
 * A module of `bun run bench` (1,000 agents, or $MCS_BENCH_AGENTS); standalone it prints JSON.
 *
 * Endpoint removal after a node dies (`removal`): agents with the agent's gossip timings, a settled
 * fleet; a node holding one of a service's two endpoints crashes. Each agent re-plans the service
 * (the real planServices, on its own planningMembers view of the member list, as the agent loop
 * does) at every change of that member's state; the figure is the virtual time from the crash until
 * that agent's backends exclude the dead node's endpoint — p99 and max over agents, the worst of
 * CRASHES crashes — against the failure-detection time (crash → every agent holds it "dead") in the
 * same run. What it leaves out: the agent loop's re-plan and nft apply after the member change (the
 * agent and dataplane benches measure those).
 */
import { planningMembers } from "../../internal/agent/membership.ts";
import { AGENT_GOSSIP_CONFIG, type GossipNode, Sim } from "../../internal/gossip/index.ts";
import { buildContext } from "../../internal/planner/context.ts";
import { planServices } from "../../internal/planner/steps/services.ts";
import type { ReplicatedRow } from "../../internal/store/index.ts";
import type { MemberState, Topology } from "../../internal/topology/index.ts";
import { type BenchResult, percentile } from "./lib.ts";

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

const CRASHES = 3;

/** One cluster holding every agent's node; service demo/echo has an endpoint on `a` and on `b`. */
function removalTopology(names: string[], a: string, b: string): Topology {
  return {
    clusters: [
      {
        name: "c1",
        networkType: "p2p",
        ipFamily: "ipv4",
        podCIDRs: ["10.244.0.0/16"],
        serviceCIDRs: [],
        globalCIDRs: {},
        bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
        localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
      },
    ],
    nodes: names.map((name, i) => ({
      name,
      cluster: "c1",
      ipv4: `192.168.${i >> 8}.${i & 255}`,
      podCIDRs: [],
      gatewayCandidate: false,
    })),
    serviceImports: [
      {
        name: "demo/echo",
        namespace: "demo",
        service: "echo",
        type: "ClusterSetIP",
        ips: ["241.0.0.10"],
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
        sessionAffinity: "None",
        clusters: ["c1"],
      },
    ],
    serviceEndpoints: [
      {
        name: "demo/echo/c1/echo-x",
        namespace: "demo",
        service: "echo",
        cluster: "c1",
        slice: "echo-x",
        addressType: "IPv4",
        ports: [{ name: "http", port: 8080, protocol: "TCP" }],
        endpoints: [
          { addresses: ["10.244.1.2"], ready: true, node: a },
          { addresses: ["10.244.2.2"], ready: true, node: b },
        ],
      },
    ],
  };
}

/** Does `self`'s plan (its own member view, as the agent builds it) still send to `addr`? */
function backendsHave(t: Topology, self: string, node: GossipNode, addr: string): boolean {
  const view: Record<string, MemberState> = {};
  for (const m of node.memberList()) view[m.name] = m.state;
  const members = planningMembers(view);
  const vips = planServices(buildContext({ topology: t, self, members, electionMembers: members }));
  return vips.some((v) => v.endpoints.some((e) => e.address === addr));
}

export interface Removal {
  agents: number;
  /** Worst over the crashes of the p99 / max over agents (virtual ms). */
  removalP99Ms: number;
  removalMaxMs: number;
  /** Worst over the crashes: crash → every agent holds the node dead. */
  detectionMs: number;
}

/** Crash a node holding an endpoint, CRASHES times; when each agent's backends lose it. */
export function removal(n: number): Removal {
  const sim = new Sim({ seed: 11, config: AGENT_GOSSIP_CONFIG });
  const names = sim.addNodes(n, "n", { settled: true });
  sim.run(3000);
  sim.runUntil(() => names.every((x) => sim.node(x).liveCount === n - 1), 60_000, 100);
  let cur: {
    victim: string;
    t: Topology;
    t0: number;
    gone: Map<string, number>;
    dead: Map<string, number>;
  } | null = null;
  for (const x of names) {
    sim.node(x).onMemberChange((name, state) => {
      const c = cur;
      if (!c || name !== c.victim) return;
      if (state === "dead" && !c.dead.has(x)) c.dead.set(x, sim.time - c.t0);
      if (!c.gone.has(x) && !backendsHave(c.t, x, sim.node(x), "10.244.1.2")) c.gone.set(x, sim.time - c.t0);
    });
  }
  const out: Removal = { agents: n, removalP99Ms: 0, removalMaxMs: 0, detectionMs: 0 };
  for (let k = 0; k < CRASHES; k++) {
    const victim = names[1 + k * 13] as string;
    const t = removalTopology(names, victim, names[0] as string);
    const up = sim.upNodes().filter((x) => x !== victim);
    if (!up.every((x) => backendsHave(t, x, sim.node(x), "10.244.1.2")))
      throw new Error(`before crash ${k}: some agent already excludes ${victim}`);
    cur = { victim, t, t0: sim.time, gone: new Map(), dead: new Map() };
    sim.crash(victim);
    const c = cur;
    const ok = sim.runUntil(() => c.gone.size === up.length && c.dead.size === up.length, 60_000, 10);
    if (!ok) throw new Error(`crash ${k}: ${c.gone.size}/${up.length} agents excluded ${victim}`);
    const times = [...c.gone.values()];
    out.removalP99Ms = Math.max(out.removalP99Ms, percentile(times, 99));
    out.removalMaxMs = Math.max(out.removalMaxMs, Math.max(...times));
    out.detectionMs = Math.max(out.detectionMs, Math.max(...c.dead.values()));
    cur = null;
    sim.run(2000);
  }
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const f = measure(Number(process.env.MCS_BENCH_AGENTS ?? 1000));
  const r = removal(Number(process.env.MCS_BENCH_AGENTS ?? 1000));
  const detection = { name: "failure detection (crash → all agents: dead), worst", value: r.detectionMs };
  return [
    {
      name: `MCS endpoint propagation p99 to all ${f.agents} agents (gossip sim, virtual time)`,
      value: f.p99Ms,
      unit: "ms",
    },
    { name: `  … max over ${f.agents} agents`, value: f.maxMs, unit: "ms" },
    {
      name: `endpoint of a crashed node out of every agent's backends, p99 over ${r.agents} agents (worst of ${CRASHES} crashes, agent gossip timings)`,
      value: r.removalP99Ms,
      unit: "ms",
      baseline: detection,
    },
    {
      name: `  … max over ${r.agents} agents`,
      value: r.removalMaxMs,
      unit: "ms",
      baseline: detection,
      target: "<= failure detection",
      ok: r.removalMaxMs <= r.detectionMs,
    },
  ];
}

if (import.meta.main) {
  const f = measure(Number(process.argv[2] ?? 1000));
  console.log(JSON.stringify({ agents: f.agents, p99Ms: f.p99Ms.toFixed(1), maxMs: f.maxMs.toFixed(1) }));
  console.log(JSON.stringify(removal(Number(process.argv[2] ?? 1000))));
}
