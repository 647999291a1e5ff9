/**
 * Reachability-aware SWIM (GossipNode.setReach, topologyReach): in the lab's layout the one node of
 * c2 that is not a gateway candidate (c2-node-3) reaches only its own cluster. Without the reach
 * relation every other cluster's agent probes it, fails, and — whenever its three random indirect
 * helpers are all outside c2 — suspects it and sometimes declares it dead: false verdicts that take
 * its endpoints out of those agents' clusterset answers. With it, only c2 probes c2-node-3, and its
 * real failures still reach every agent by gossip.
 */
import { describe, expect, test } from "bun:test";
import { AGENT_GOSSIP_CONFIG } from "../../internal/agent/gossip.ts";
import { topologyReach } from "../../internal/agent/membership.ts";
import { CONTROLLER_OWNER, type Reach, Sim } from "../../internal/gossip/index.ts";
import { MemberTable, newMember } from "../../internal/gossip/members.ts";
import type { MemoryReplica } from "../../internal/gossip/memory-replica.ts";
import { seededRandom, weightedSample } from "../../internal/gossip/ports.ts";
import { TopologySchema } from "../../internal/topology/index.ts";

const topology = TopologySchema.parse({
  clusters: [
    { name: "c1", networkType: "p2p" },
    { name: "c2", networkType: "gateway" },
    { name: "c3", networkType: "p2p" },
  ],
  nodes: [
    { name: "c1-node-1", cluster: "c1", ipv4: "192.168.1.1" },
    { name: "c1-node-2", cluster: "c1", ipv4: "192.168.1.2" },
    { name: "c2-node-1", cluster: "c2", ipv4: "192.168.2.1", gatewayCandidate: true },
    { name: "c2-node-2", cluster: "c2", ipv4: "192.168.2.2", gatewayCandidate: true },
    { name: "c2-node-3", cluster: "c2", ipv4: "192.168.2.3" },
    { name: "c3-node-1", cluster: "c3", ipv4: "192.168.3.1" },
    { name: "c3-node-2", cluster: "c3", ipv4: "192.168.3.2" },
  ],
});
const names = topology.nodes.map((n) => n.name);
const reach = topologyReach(topology);
const LAN_ONLY = "c2-node-3";

/** The lab's fabric: frames between nodes that do not reach each other are dropped. */
function lab(seed: number, withReach: boolean, given: Reach = reach): Sim {
  const sim = new Sim({ seed, config: AGENT_GOSSIP_CONFIG });
  for (const n of names) sim.addNode(n, { members: names, settled: true });
  sim.setLinks(reach);
  if (withReach) for (const n of names) sim.node(n).setReach(given);
  return sim;
}

/**
 * ms until the LAN-only node holds each of `count` rows seeded, as the controller does, into every
 * agent it reaches (all but c2-node-3), one row at a time.
 */
function lanOnlyDelays(sim: Sim, count: number): number[] {
  const seeded = names.filter((n) => n !== LAN_ONLY);
  const out: number[] = [];
  const lanOnly = sim.replica(LAN_ONLY) as MemoryReplica;
  sim.run(3000);
  for (let k = 0; k < count; k++) {
    const r = {
      table: "service_endpoints",
      key: `k${k}`,
      owner: CONTROLLER_OWNER,
      version: 1,
      deleted: false,
      data: { k },
    };
    for (const n of seeded) {
      sim.replica(n).merge([r]);
      sim.node(n).publish([r]);
    }
    let t = 0;
    for (; !lanOnly.get(r.table, r.key) && t < 10_000; t += 10) sim.run(10);
    out.push(t);
    sim.run(500 + ((k * 37) % 400));
  }
  return out;
}

function verdicts(sim: Sim): { suspicions: number; deaths: number } {
  let suspicions = 0;
  let deaths = 0;
  for (const n of names) {
    suspicions += sim.node(n).stats.suspicionsRaised;
    deaths += sim.node(n).stats.deathsDeclared;
  }
  return { suspicions, deaths };
}

describe("topologyReach", () => {
  test("a gateway cluster's non-candidates reach only their cluster; everyone else reaches everyone", () => {
    expect(reach("c2-node-3", "c2-node-1")).toBe(true);
    expect(reach("c2-node-3", "c1-node-1")).toBe(false);
    expect(reach("c3-node-2", "c2-node-3")).toBe(false);
    expect(reach("c1-node-1", "c2-node-2")).toBe(true);
    expect(reach("c1-node-1", "c3-node-2")).toBe(true);
    expect(reach("c1-node-1", "not-in-topology")).toBe(true);
  });

  test("a gateway cluster with no candidate flagged counts every node as one", () => {
    const t = TopologySchema.parse({
      clusters: [
        { name: "a", networkType: "gateway" },
        { name: "b", networkType: "p2p" },
      ],
      nodes: [
        { name: "a1", cluster: "a", ipv4: "10.0.0.1" },
        { name: "b1", cluster: "b", ipv4: "10.0.1.1" },
      ],
    });
    expect(topologyReach(t)("a1", "b1")).toBe(true);
  });

  test("reachers: a LAN-only node is reached by its own cluster only; the others by all but the far LAN-only nodes", () => {
    expect(reach.reachers?.("c2-node-3")).toBe(2);
    expect(reach.reachers?.("c2-node-1")).toBe(6);
    expect(reach.reachers?.("c1-node-1")).toBe(5);
    for (const n of names)
      expect(reach.reachers?.(n)).toBe(names.filter((m) => m !== n && reach(m, n)).length);
  });
});

describe("weightedSample", () => {
  test("k distinct elements, drawn in proportion to their weights", () => {
    const r = seededRandom(3);
    const xs = ["a", "b", "c", "d"];
    const w: Record<string, number> = { a: 8, b: 1, c: 1, d: 0 };
    const first: Record<string, number> = { a: 0, b: 0, c: 0, d: 0 };
    for (let i = 0; i < 10_000; i++) {
      const got = weightedSample(r, xs, 2, (x) => w[x]!);
      expect(new Set(got).size).toBe(2);
      first[got[0]!]! += 1;
    }
    // P(first = a) = 8/10; a weight of 0 is never drawn while others are left
    expect(first.a! / 10_000).toBeCloseTo(0.8, 1);
    expect(first.d).toBe(0);
    expect(weightedSample(r, xs, 9, (x) => w[x]!)).toHaveLength(4);
  });
});

describe("MemberTable.pick with reachers", () => {
  // a gateway g0 of a gateway cluster whose three other nodes are LAN-only (3 reachers each), and a
  // p2p cluster p of five (5 reachers each: g0 and the other four)
  const t = TopologySchema.parse({
    clusters: [
      { name: "g", networkType: "gateway" },
      { name: "p", networkType: "p2p" },
    ],
    nodes: [
      { name: "g0", cluster: "g", ipv4: "10.0.0.1", gatewayCandidate: true },
      ...[1, 2, 3].map((i) => ({ name: `g${i}`, cluster: "g", ipv4: `10.0.0.${i + 1}` })),
      ...[1, 2, 3, 4, 5].map((i) => ({ name: `p${i}`, cluster: "p", ipv4: `10.0.1.${i}` })),
    ],
  });
  const r = topologyReach(t);
  const table = new MemberTable({ forgetMemoryMs: 60_000, maxQueuedMembers: 100 }, seededRandom(9));
  for (const n of t.nodes) if (n.name !== "g0") table.add(newMember(n.name, n.name, 1, "alive", true, 0));
  table.setReach((name) => r("g0", name), r.reachers);
  const live = table.reachable();

  test("the LAN-only members (3 reachers each) fill at most k - 1 slots: the other cluster keeps one", () => {
    for (let i = 0; i < 200; i++) {
      const got = table.pick(live, 3).map((m) => m.name);
      expect(new Set(got).size).toBe(3);
      expect(got.filter((n) => n.startsWith("p")).length).toBe(1);
    }
  });

  test("k = 1 (anti-entropy peer) is drawn, never pinned to one member", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(table.pick(live, 1)[0]!.name);
    expect(seen.size).toBe(8);
  });

  test("fewer members than slots: all of them", () => {
    const few = live.filter((m) => m.name.startsWith("g"));
    expect(
      table
        .pick(few, 5)
        .map((m) => m.name)
        .sort(),
    ).toEqual(["g1", "g2", "g3"]);
  });
});

describe("reachability-aware SWIM in the simulator (the lab's layout, agent timings)", () => {
  test("ten virtual minutes: no suspicion at all with the reach relation; without it (control) false deaths", () => {
    let control = { suspicions: 0, deaths: 0 };
    for (const seed of [1, 2, 3]) {
      const without = lab(seed, false);
      without.run(600_000);
      const v = verdicts(without);
      control = { suspicions: control.suspicions + v.suspicions, deaths: control.deaths + v.deaths };
      const withReach = lab(seed, true);
      withReach.run(600_000);
      expect(verdicts(withReach)).toEqual({ suspicions: 0, deaths: 0 });
      for (const n of names)
        for (const m of names) if (n !== m) expect(withReach.node(n).memberState(m)).toBe("alive");
    }
    expect(control.suspicions).toBeGreaterThan(100);
    expect(control.deaths).toBeGreaterThan(0);
  });

  test("real failures still reach everyone: the LAN-only node's crash, and a crash it cannot probe", () => {
    const sim = lab(5, true);
    sim.run(3000);
    sim.crash(LAN_ONLY);
    const others = names.filter((n) => n !== LAN_ONLY);
    expect(
      sim.runUntil(() => others.every((n) => sim.node(n).memberState(LAN_ONLY) === "dead"), 10_000),
    ).toBe(true);
    sim.restart(LAN_ONLY, { members: names });
    sim.node(LAN_ONLY).setReach(reach);
    expect(
      sim.runUntil(() => others.every((n) => sim.node(n).memberState(LAN_ONLY) === "alive"), 20_000),
    ).toBe(true);
    // c1-node-1 is one c2-node-3 never probes: it learns the death from the others
    sim.crash("c1-node-1");
    expect(sim.runUntil(() => sim.node(LAN_ONLY).memberState("c1-node-1") === "dead", 10_000)).toBe(true);
  });

  test("a partition: the far side suspects the LAN-only node it never probes (derived liveness); after heal all alive", () => {
    for (const seed of [7, 8, 9]) {
      const sim = lab(seed, true);
      sim.run(3000);
      const c3 = names.filter((n) => n.startsWith("c3-"));
      const rest = names.filter((n) => !n.startsWith("c3-"));
      sim.partition([c3, rest]);
      const down = (s: string | undefined) => s === "suspect" || s === "dead";
      // c3 cannot probe c2-node-3; it learns nothing of it from c2 either (cut off): only the
      // derivation from c2's gateways being down can take it out of c3's answers
      expect(
        sim.runUntil(() => c3.every((n) => rest.every((m) => down(sim.node(n).memberState(m)))), 15_000),
      ).toBe(true);
      expect(c3.some((n) => sim.node(n).stats.suspicionsDerived > 0)).toBe(true);
      for (const n of c3) for (const m of c3) if (n !== m) expect(sim.node(n).memberState(m)).toBe("alive");
      // while cut off, c2 keeps the LAN-only node alive: nothing there is derived
      sim.run(10_000);
      // each c3 agent suspected it or confirmed the other's suspicion (a shorter Lifeguard timeout),
      // and the far side's verdict is dead
      expect(c3.every((n) => sim.node(n).stats.suspicionsDerived > 0)).toBe(true);
      for (const n of c3) expect(sim.node(n).memberState(LAN_ONLY)).toBe("dead");
      for (const n of rest) expect(sim.node(n).memberState(LAN_ONLY)).toBe("alive");
      expect(rest.every((n) => sim.node(n).stats.suspicionsDerived === 0)).toBe(true);
      sim.heal();
      expect(
        sim.runUntil(
          () => names.every((n) => names.every((m) => n === m || sim.node(n).memberState(m) === "alive")),
          30_000,
        ),
      ).toBe(true);
    }
  });

  test("no voucher left: a cluster's gateway candidates crash, the others suspect its LAN-only node", () => {
    const sim = lab(11, true);
    sim.run(3000);
    sim.crash("c2-node-1");
    sim.crash("c2-node-2");
    const far = names.filter((n) => !n.startsWith("c2-"));
    expect(sim.runUntil(() => far.every((n) => sim.node(n).memberState(LAN_ONLY) !== "alive"), 15_000)).toBe(
      true,
    );
  });

  test("rows reach the LAN-only node by rumor, not by anti-entropy: its few reachers always pick it", () => {
    // control: the same relation without reachers (uniform targets): c2-node-1 and c2-node-2 each
    // send a row to 3 of their 6 peers, both miss c2-node-3 about 1 time in 4, and anti-entropy
    // (every 2 s) brings the row
    const uniform: Reach = (a, b) => reach(a, b);
    const control = lanOnlyDelays(lab(21, true, uniform), 200);
    expect(control.filter((t) => t >= 500).length).toBeGreaterThan(20);
    for (const seed of [21, 22, 23]) {
      const delays = lanOnlyDelays(lab(seed, true), 200);
      expect(Math.max(...delays)).toBeLessThan(100);
    }
  });
});
