import { describe, expect, test } from "bun:test";
import { planningMembers, reachabilityMembers } from "../../internal/agent/gossip.ts";
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
