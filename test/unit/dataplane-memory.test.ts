/**
 * actualOf (internal/dataplane/diff.ts): the kernel state a converged plan leaves, used to diff an
 * event-driven pass against the last converged plan without reading the kernel first.
 */
import { describe, expect, test } from "bun:test";
import { actualOf, diff } from "../../internal/dataplane/index.ts";
import { plan } from "../../internal/planner/index.ts";
import { validateTopology } from "../../internal/topology/index.ts";
import { clone, labTopology } from "./topology-fixtures.ts";

const topo = validateTopology(labTopology());
const failed = { "c2-n1": "dead" } as const;

describe("actualOf", () => {
  test("a converged plan has nothing left to do, on every node of the lab topology, before and after a failover", () => {
    for (const n of topo.nodes) {
      for (const electionMembers of [undefined, failed]) {
        const hs = plan({ topology: topo, self: n.name, ...(electionMembers ? { electionMembers } : {}) });
        expect(diff(hs, actualOf(hs))).toEqual([]);
      }
    }
  });

  test("with IPsec (policies and states) and non-canonical IPv6 spellings in the plan", () => {
    const t = clone(labTopology());
    for (const n of t.nodes ?? []) {
      if (n.name === "c1-n1") n.elasticIP = "203.0.113.11";
      if (n.name === "c3-n1") n.elasticIP = "203.0.113.31";
    }
    const hs = plan({
      topology: validateTopology(t),
      self: "c1-n1",
      ipsecSecret: new Uint8Array(32).fill(7),
    });
    expect(hs.xfrm.policies.length).toBeGreaterThan(0);
    expect(hs.xfrm.states.length).toBeGreaterThan(0);
    const spelled = {
      ...hs,
      routes: hs.routes.map((r) => (r.family === 6 ? { ...r, via: r.via.toUpperCase() } : r)),
    };
    expect(diff(hs, actualOf(spelled))).toEqual([]);
  });

  test("the gateway switch seen from a remote node: routes replaced, old peer's objects removed", () => {
    const before = plan({ topology: topo, self: "c1-n1" });
    const after = plan({ topology: topo, self: "c1-n1", electionMembers: failed });
    expect(before.gateways.c2).toBe("c2-n1");
    expect(after.gateways.c2).toBe("c2-n2");
    const changes = diff(after, actualOf(before));
    const count = (k: string) => changes.filter((c) => c.kind === k).length;
    // c2's pod + service CIDRs, v4 and v6
    expect(count("route-replace")).toBe(4);
    expect(count("neigh-replace")).toBe(2);
    expect(count("neigh-del")).toBe(2);
    expect(count("fdb-add")).toBe(4);
    expect(count("fdb-del")).toBe(4);
    expect(changes.length).toBe(16);
  });
});
