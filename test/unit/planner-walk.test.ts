/**
 * Cross-node consistency of plans: follow every planned route hop by hop through the plans of all
 * nodes (neighbour -> MAC -> FDB -> the node owning that VTEP) and check that it ends in the
 * cluster that owns the destination, and that every hop can answer back (the peer knows us too).
 */
import { describe, expect, test } from "bun:test";
import { type HostState, plan } from "../../internal/planner/index.ts";
import {
  type ClusterInput,
  type MemberState,
  type NodeInput,
  type Topology,
  type TopologyInput,
  validateTopology,
} from "../../internal/topology/index.ts";
import { clone, labTopology } from "./topology-fixtures.ts";

type Mut = TopologyInput & { clusters: ClusterInput[]; nodes: NodeInput[] };

function walkAll(t: Topology, members: Record<string, MemberState> = {}): number {
  const alive = t.nodes.filter((n) => members[n.name] !== "dead" && members[n.name] !== "left");
  const plans = new Map<string, HostState>(
    alive.map((n) => [n.name, plan({ topology: t, self: n.name, members })]),
  );
  const clusterOf = new Map(t.nodes.map((n) => [n.name, n.cluster]));
  let hops = 0;
  for (const [name, h] of plans) {
    for (const r of h.routes) {
      let at = h;
      let route = r;
      const seen = new Set<string>([name]);
      for (;;) {
        const neigh = at.neighbors.find((x) => x.dev === route.dev && x.ip === route.via);
        expect(neigh, `${at.node}: no neighbour ${route.via} on ${route.dev}`).toBeDefined();
        const fdb = at.fdb.find((x) => x.dev === route.dev && x.mac === neigh?.mac);
        expect(fdb, `${at.node}: no FDB for ${neigh?.mac}`).toBeDefined();
        expect(
          at.fdb.some((x) => x.dev === route.dev && x.mac === "00:00:00:00:00:00" && x.dst === fdb?.dst),
        ).toBe(true);
        const next = [...plans.values()].find((p) =>
          p.devices.some(
            (d) =>
              d.name === route.dev &&
              d.local === fdb?.dst &&
              d.mac === neigh?.mac &&
              d.address.split("/")[0] === route.via,
          ),
        );
        expect(next, `${at.node}: no node owns VTEP ${fdb?.dst} on ${route.dev}`).toBeDefined();
        if (!next) break;
        hops++;
        // the next hop can answer: it has us as a peer on the same device
        const ours = at.devices.find((d) => d.name === route.dev);
        expect(
          next.neighbors.some(
            (x) => x.dev === route.dev && x.ip === ours?.address.split("/")[0] && x.mac === ours?.mac,
          ),
          `${next.node} does not know ${at.node} on ${route.dev}`,
        ).toBe(true);
        if (route.dev.startsWith("vx-bridge")) {
          // arrived in the destination cluster
          expect(clusterOf.get(next.node)).toBe(route.peer?.split("/")[0]);
          break;
        }
        // vx-local: the gateway of our cluster forwards on vx-bridge
        expect(seen.has(next.node)).toBe(false);
        seen.add(next.node);
        const onward = next.routes.find((x) => x.dst === route.dst);
        expect(onward, `${next.node} has no onward route to ${route.dst}`).toBeDefined();
        if (!onward) break;
        expect(onward.dev.startsWith("vx-bridge")).toBe(true);
        at = next;
        route = onward;
      }
    }
  }
  return hops;
}

describe("plans agree across nodes", () => {
  test("lab topology (P2P dual, gateway dual, P2P v4 with global CIDRs) plus a v4 gateway cluster", () => {
    const t = clone(labTopology()) as Mut;
    t.clusters.push({
      name: "c4",
      networkType: "gateway",
      podCIDRs: ["10.246.0.0/16"],
      serviceCIDRs: ["10.99.0.0/16"],
    });
    t.nodes.push(
      {
        name: "c4-n1",
        cluster: "c4",
        ipv4: "192.168.4.1",
        podCIDRs: ["10.246.1.0/24"],
        gatewayCandidate: true,
      },
      { name: "c4-n2", cluster: "c4", ipv4: "192.168.4.2", podCIDRs: ["10.246.2.0/24"] },
    );
    const topo = validateTopology(t);
    expect(walkAll(topo)).toBeGreaterThan(100);
    // after a gateway death, with stickiness inputs ignored, everything still agrees
    expect(walkAll(topo, { "c2-n1": "dead", "c1-n2": "dead" })).toBeGreaterThan(50);
  });

  test("the lab's gateway masquerades what non-gateway nodes and remote nodes send from overlay addresses", () => {
    const topo = validateTopology(labTopology());
    const gw = plan({ topology: topo, self: "c2-n1" });
    const n3 = plan({ topology: topo, self: "c2-n3" });
    // node-sourced traffic of c2-n3 leaves with its vx-local address ...
    const src = n3.devices.find((d) => d.name === "vx-local")?.address;
    expect(src).toBe("210.168.2.3/8");
    // ... which the gateway masquerades when it leaves via vx-bridge
    const m = gw.nft.masquerade.find((x) => x.oif === "vx-bridge");
    expect(m?.srcCIDRs).toEqual(["210.0.0.0/8"]);
  });
});
