import { describe, expect, test } from "bun:test";
import {
  DEAD_GRACE_MS,
  membershipChanges,
  planningMembers,
  reachabilityMembers,
} from "../../internal/agent/gossip.ts";
import { MemberEventLog } from "../../internal/agent/member-events.ts";
import { type MemberInfo, Sim } from "../../internal/gossip/index.ts";
import { createLogger } from "../../internal/observability/index.ts";
import { plan } from "../../internal/planner/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const topo: Topology = {
  clusters: [
    {
      name: "a",
      networkType: "p2p",
      ipFamily: "ipv4",
      podCIDRs: ["10.1.0.0/16"],
      serviceCIDRs: ["10.101.0.0/16"],
      globalCIDRs: {},
      bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
      localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
    },
    {
      name: "b",
      networkType: "gateway",
      ipFamily: "ipv4",
      podCIDRs: ["10.2.0.0/16"],
      serviceCIDRs: ["10.102.0.0/16"],
      globalCIDRs: {},
      bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
      localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
    },
  ],
  nodes: [
    { name: "a-1", cluster: "a", ipv4: "192.168.1.1", podCIDRs: ["10.1.1.0/24"], gatewayCandidate: false },
    { name: "a-2", cluster: "a", ipv4: "192.168.1.2", podCIDRs: ["10.1.2.0/24"], gatewayCandidate: false },
    { name: "b-1", cluster: "b", ipv4: "192.168.2.1", podCIDRs: ["10.2.1.0/24"], gatewayCandidate: true },
    { name: "b-2", cluster: "b", ipv4: "192.168.2.2", podCIDRs: ["10.2.2.0/24"], gatewayCandidate: true },
  ],
};

describe("agent membership views", () => {
  test("a dead member counts as suspect for routes until the grace period ends", () => {
    const members = [
      { name: "x", state: "dead" as const, since: 1_000 },
      { name: "y", state: "alive" as const, since: 0 },
      { name: "z", state: "left" as const, since: 1_000 },
    ];
    expect(reachabilityMembers(members, 5_000, 10_000)).toEqual({ x: "suspect", y: "alive", z: "left" });
    expect(reachabilityMembers(members, 11_000, 10_000)).toEqual({ x: "dead", y: "alive", z: "left" });
  });

  test("after isolation, the grace counts from the first peer heard from, not from the deaths", () => {
    const members = [
      { name: "x", state: "dead" as const, since: 1_000 },
      { name: "y", state: "alive" as const, since: 30_000 },
    ];
    // dead for 29 s, but we were isolated until 30 s (the guard kept it): still within the grace
    expect(reachabilityMembers(members, 30_500, 10_000, 30_000)).toEqual({ x: "suspect", y: "alive" });
    expect(reachabilityMembers(members, 40_001, 10_000, 30_000)).toEqual({ x: "dead", y: "alive" });
  });

  test("isolation guard: with no live peer, dead peers are kept (suspect); left is honoured", () => {
    expect(planningMembers({ x: "dead", z: "left" })).toEqual({ x: "suspect", z: "left" });
    expect(planningMembers({ x: "dead", y: "alive" })).toEqual({ x: "dead", y: "alive" });
  });

  test("a dead gateway fails over at once while a dead P2P node keeps its routes during the grace", () => {
    const before = plan({ topology: topo, self: "a-1" });
    expect(before.gateways.b).toBe("b-1");
    const during = plan({
      topology: topo,
      self: "a-1",
      gateways: before.gateways,
      members: { "b-1": "suspect", "a-2": "suspect" },
      electionMembers: { "b-1": "dead", "a-2": "dead" },
    });
    expect(during.gateways.b).toBe("b-2");
    const viaB = during.routes.find((r) => r.dst === "10.2.0.0/16");
    expect(viaB?.via).toBe("220.168.2.2");
    // a-2 is in the same cluster (no overlay route to it either way); the routes to b follow the new gateway only.
    const after = plan({
      topology: topo,
      self: "a-1",
      gateways: during.gateways,
      members: { "b-1": "dead" },
      electionMembers: { "b-1": "dead" },
    });
    expect(after.fdb.some((f) => f.dst === "192.168.2.1")).toBe(false);
    expect(after.gateways.b).toBe("b-2");
  });

  test("a P2P node that is dead in the election view keeps its routes while within the grace", () => {
    const fromB = plan({
      topology: topo,
      self: "b-1",
      members: { "a-2": "suspect" },
      electionMembers: { "a-2": "dead" },
    });
    expect(fromB.routes.some((r) => r.dst === "10.1.2.0/24")).toBe(true);
    const afterGrace = plan({
      topology: topo,
      self: "b-1",
      members: { "a-2": "dead" },
      electionMembers: { "a-2": "dead" },
    });
    expect(afterGrace.routes.some((r) => r.dst === "10.1.2.0/24")).toBe(false);
  });
});

describe("gateway claims", () => {
  test("a fresh agent (no previous choice) follows the published claim, not the lowest name", () => {
    const p = plan({
      topology: topo,
      self: "a-1",
      gatewayClaims: [{ node: "b-2", cluster: "b", since: 100 }],
    });
    expect(p.gateways.b).toBe("b-2");
  });

  test("the newest claim of an alive candidate wins; a dead claimant's claim is ignored", () => {
    const claims = [
      { node: "b-1", cluster: "b", since: 100 },
      { node: "b-2", cluster: "b", since: 200 },
    ];
    expect(plan({ topology: topo, self: "a-1", gatewayClaims: claims }).gateways.b).toBe("b-2");
    expect(
      plan({ topology: topo, self: "a-1", gatewayClaims: claims, members: { "b-2": "dead" } }).gateways.b,
    ).toBe("b-1");
  });
});

/** What the agent plans with, from a GossipNode's member list (as internal/agent/gossip.ts does). */
function planView(sim: Sim, name: string, connectedSince?: number) {
  return planningMembers(
    reachabilityMembers(sim.node(name).memberList(), sim.time, DEAD_GRACE_MS, connectedSince),
  );
}

describe("replica members at agent start (simulated agents)", () => {
  test("an agent restarted alone keeps every replica peer in its plan, before and after declaring them dead", () => {
    const sim = new Sim({ seed: 41 });
    const peers = ["a-2", "b-1", "b-2", "ghost"];
    sim.addNode("a-1", { members: ["a-1", ...peers] });
    for (let t = 0; t < 60; t++) {
      const view = planView(sim, "a-1");
      expect(Object.keys(view).sort()).toEqual([...peers].sort());
      expect(Object.values(view).every((s) => s === "suspect")).toBe(true);
      sim.run(1000);
    }
    expect(peers.every((p) => sim.node("a-1").memberState(p) === "dead")).toBe(true);
  });

  test("an agent restarted among running peers: real peers are never dropped; a node that runs no agent is withdrawn after timeout + grace", () => {
    const sim = new Sim({ seed: 42 });
    const real = ["a-1", "a-2", "b-1", "b-2"];
    const all = [...real, "ghost"];
    for (const n of real.slice(1)) sim.addNode(n, { members: all });
    sim.run(15_000);
    sim.addNode("a-1", { members: all }); // the restarted agent
    const start = sim.time;
    let withdrawnAt: number | undefined;
    let connected: number | undefined;
    sim.node("a-1").onMemberChange((_n, st) => {
      if (st === "alive" && connected === undefined) connected = sim.time;
    });
    for (let t = 0; t < 400; t++) {
      const view = planView(sim, "a-1", connected);
      for (const p of real.slice(1)) expect(view[p] === "alive" || view[p] === "suspect").toBe(true);
      if (view.ghost === "dead" && withdrawnAt === undefined) withdrawnAt = sim.time - start;
      sim.run(100);
    }
    const cfg = sim.node("a-1").cfg;
    expect(real.slice(1).every((p) => sim.node("a-1").memberState(p) === "alive")).toBe(true);
    expect(withdrawnAt).toBeDefined();
    expect(withdrawnAt!).toBeGreaterThanOrEqual(cfg.unconfirmedTimeoutMs + DEAD_GRACE_MS);
    expect(withdrawnAt!).toBeLessThanOrEqual(cfg.unconfirmedTimeoutMs + DEAD_GRACE_MS + 2000);
  });
});

describe("membership log volume", () => {
  test("1,000 replica members that never answer give one info line, not 1,000", () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = createLogger({ node: "t", level: "debug" });
    const capture = (level: number) => (obj: unknown, msg?: string) => {
      lines.push({ level, msg: typeof obj === "string" ? obj : (msg ?? "") });
    };
    logger.debug = capture(20) as typeof logger.debug;
    logger.info = capture(30) as typeof logger.info;
    const timers: Array<() => void> = [];
    const names = Array.from({ length: 1000 }, (_, i) => `ghost${i}`);
    const log = new MemberEventLog({
      logger,
      unconfirmed: [...names, "peer"],
      setTimer: (_ms, fn) => timers.push(fn),
    });
    const info = (name: string, confirmed: boolean) => ({
      name,
      addr: name,
      incarnation: 0,
      state: "dead" as const,
      since: 0,
      confirmed,
    });
    log.record("peer", "alive", { ...info("peer", true), state: "alive" });
    for (const n of names) log.record(n, "dead", info(n, false));
    for (const t of timers.splice(0)) t();
    // a confirmed member's later changes are logged one by one as before
    log.record("peer", "dead", info("peer", true));
    const infos = lines.filter((l) => l.level === 30).map((l) => l.msg);
    expect(infos).toEqual([
      "1 replica member(s) answered: alive",
      "1000 replica member(s) never answered: dead (no agent running there?)",
      "member peer is dead",
    ]);
    expect(timers.length).toBe(0);
  });
});

describe("membership follows the topology: log lines", () => {
  test("one info line per change, however many members; re-added members that answer are summarised", () => {
    const lines: Array<{ level: number; msg: string; obj: unknown }> = [];
    const logger = createLogger({ node: "t", level: "debug" });
    const capture = (level: number) => (obj: unknown, msg?: string) => {
      lines.push({ level, obj, msg: typeof obj === "string" ? obj : (msg ?? "") });
    };
    logger.debug = capture(20) as typeof logger.debug;
    logger.info = capture(30) as typeof logger.info;
    const timers: Array<() => void> = [];
    const log = new MemberEventLog({ logger, unconfirmed: [], setTimer: (_ms, fn) => timers.push(fn) });
    const gone = Array.from({ length: 500 }, (_, i) => `gone${i}`);
    log.topologyChanged(["back"], gone);
    log.topologyChanged([], []);
    log.record("back", "alive", {
      name: "back",
      addr: "b",
      incarnation: 2,
      state: "alive",
      since: 0,
      confirmed: true,
    });
    for (const t of timers.splice(0)) t();
    const infos = lines.filter((l) => l.level === 30);
    expect(infos.map((l) => l.msg)).toEqual([
      "membership follows the topology: 1 node(s) added (unconfirmed), 500 member(s) no longer in it forgotten",
      "1 replica member(s) answered: alive",
    ]);
    expect((infos[0]!.obj as { forgottenMembers: string[] }).forgottenMembers.length).toBe(10);
  });
});

describe("membership follows the topology (membershipChanges)", () => {
  const m = (name: string, state: MemberInfo["state"], confirmed = true): MemberInfo => ({
    name,
    addr: `wss://${name}/v1/gossip`,
    incarnation: 1,
    state,
    since: 0,
    confirmed,
  });
  const addrOf = (name: string) => (name === "noaddr" ? undefined : `wss://${name}/v1/gossip`);

  test("members removed from the topology are forgotten once dead, left or never heard from; live ones stay", () => {
    const members = [
      m("kept", "dead"),
      m("gone-dead", "dead"),
      m("gone-left", "left"),
      m("gone-unconfirmed", "suspect", false),
      m("gone-unconfirmed-dead", "dead", false),
      m("gone-alive", "alive"),
      m("gone-suspect", "suspect"),
    ];
    const r = membershipChanges(["self", "kept"], members, "self", addrOf);
    expect(r.forget.sort()).toEqual(["gone-dead", "gone-left", "gone-unconfirmed", "gone-unconfirmed-dead"]);
    expect(r.add).toEqual([]);
  });

  test("topology nodes that are not members are added with their address (not ourselves, not without one)", () => {
    const r = membershipChanges(["self", "a", "back", "noaddr"], [m("a", "alive")], "self", addrOf);
    expect(r.add).toEqual([{ name: "back", addr: "wss://back/v1/gossip" }]);
    expect(r.forget).toEqual([]);
  });

  test("a replica without any node (not seeded yet, being rebuilt) changes nothing", () => {
    expect(membershipChanges([], [m("x", "dead"), m("y", "suspect", false)], "self", addrOf)).toEqual({
      add: [],
      forget: [],
    });
  });

  test("simulated agents: a node removed from the topology stays while its agent runs, is forgotten everywhere once it stops, and is a member again (alive) once re-added and restarted", () => {
    const sim = new Sim({ seed: 51 });
    const names = sim.addNodes(10);
    const others = names.filter((n) => n !== "n3");
    let topology = [...names];
    // what internal/agent/gossip.ts does on a change of the replica's nodes, or a death outside it
    const follow = (n: string) => {
      const node = sim.node(n);
      const { add, forget } = membershipChanges(topology, node.memberList(), n, (x) => x);
      for (const x of forget) node.forget(x);
      node.addMembers(add);
    };
    for (const n of names)
      sim.node(n).onMemberChange((who, st) => {
        if ((st === "dead" || st === "left") && !topology.includes(who)) sim.schedule(0, () => follow(n));
      });
    const listed = (n: string, who: string) =>
      sim
        .node(n)
        .memberList()
        .some((x) => x.name === who);
    sim.run(3000);
    topology = names.filter((n) => n !== "n3");
    for (const n of others) follow(n);
    sim.run(5000);
    expect(others.every((n) => sim.node(n).memberState("n3") === "alive")).toBe(true);
    sim.crash("n3");
    expect(sim.runUntil(() => others.every((n) => !listed(n, "n3")), 20_000)).toBe(true);
    sim.run(30_000);
    expect(others.filter((n) => listed(n, "n3"))).toEqual([]);
    for (const n of others) expect(Object.keys(planView(sim, n))).not.toContain("n3");
    topology = [...names];
    for (const n of others) follow(n);
    expect(others.every((n) => sim.node(n).memberState("n3") === "suspect")).toBe(true);
    sim.restart("n3", { members: names });
    expect(sim.runUntil(() => others.every((n) => sim.node(n).memberState("n3") === "alive"), 20_000)).toBe(
      true,
    );
  });
});
