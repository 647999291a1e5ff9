/**
 * A remote node's dataplane when the gateway of a gateway cluster changes (failover), on a real
 * kernel: plans come from the planner (dual stack, the lab's shape), the reconciler applies the plan
 * with gateway A, then the plan with gateway B.
 *  - diffing B against the converged plan A (`fromLast`, no kernel read before the change) yields
 *    exactly the changes a kernel read would, IPv4 and IPv6 (routes replaced in place, the new
 *    gateway's permanent neighbour and FDB entries, the old ones removed);
 *  - after it the kernel holds B exactly: one route per destination, no stale next hop or ECMP
 *    sibling, neighbours permanent, no FDB entry of the old gateway;
 *  - state changed behind the reconciler's back is not seen by a pass from memory, but its verify
 *    read reports it, and the next pass reads the kernel and repairs it.
 */
import { describe, expect, test } from "bun:test";
import {
  actualOf,
  type Change,
  diff,
  Reconciler,
  readActual,
  readOptionsFor,
  recordingRunner,
} from "../../internal/dataplane/index.ts";
import { type HostState, plan } from "../../internal/planner/index.ts";
import type { Node, Topology } from "../../internal/topology/index.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { makePair, NODES } from "./fixtures.ts";

const { root, scope } = await netnsSuite();

const node = (name: string, cluster: string, n: number, gatewayCandidate = false): Node => ({
  name,
  cluster,
  ipv4: `192.168.77.${n}`,
  ipv6: `fd77::${n}`,
  podCIDRs: [`10.${cluster === "c1" ? 1 : 2}.${n}.0/24`, `fd0${cluster === "c1" ? 1 : 2}:${n}::/64`],
  gatewayCandidate,
  interfaceName: "ul0",
});

const cluster = (name: string, networkType: "p2p" | "gateway", k: number): Topology["clusters"][number] => ({
  name,
  networkType,
  ipFamily: "dual",
  podCIDRs: [`10.${k}.0.0/16`, `fd0${k}::/32`],
  serviceCIDRs: [`10.20${k}.0.0/16`, `fd9${k}::/112`],
  globalCIDRs: {},
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
});

// Self (n1, namespace a) is 192.168.77.1 / fd77::1 like NODES[1]; c2's gateway candidates g1, g2.
const topology: Topology = {
  clusters: [cluster("c1", "p2p", 1), cluster("c2", "gateway", 2)],
  nodes: [
    node("n1", "c1", NODES[1].idx),
    node("g1", "c2", 2, true),
    node("g2", "c2", 3, true),
    node("w3", "c2", 4),
  ],
};

const planFor = (gateway: "g1" | "g2"): HostState =>
  plan({
    topology,
    self: "n1",
    members: { g1: "alive", g2: "alive", w3: "alive" },
    electionMembers: { g1: gateway === "g1" ? "alive" : "dead", g2: "alive", w3: "alive" },
  });

/** The next hop of plan `p`'s routes of family `f` (all lead to the gateway). */
const viaOf = (p: HostState, f: 4 | 6): string => p.routes.find((r) => r.family === f)?.via ?? "?";
const key = (c: Change): string => JSON.stringify(c);
const sorted = (cs: Change[]): string[] => cs.map(key).sort();

describe.skipIf(!root)("gateway switch on a remote node (real kernel)", () => {
  test("plan-to-plan diff equals the kernel diff; the kernel ends up holding exactly plan B (v4 and v6)", async () => {
    const { a } = await makePair(scope);
    const A = planFor("g1");
    const B = planFor("g2");
    expect(A.gateways.c2).toBe("g1");
    expect(B.gateways.c2).toBe("g2");
    const rec = recordingRunner(a.runner());
    const r = new Reconciler({ runner: rec });
    const first = await r.reconcile(A);
    expect(first.errors).toEqual([]);
    expect(first.residual).toBe(0);

    // The same changes, whether diffed against the kernel or against the converged plan.
    const real = await readActual(a.runner(), readOptionsFor(B));
    const fromKernel = diff(B, real);
    expect(sorted(diff(B, actualOf(A)))).toEqual(sorted(fromKernel));
    const kinds = new Set<string>(fromKernel.map((c) => c.kind));
    for (const k of ["route-replace", "neigh-replace", "neigh-del", "fdb-add", "fdb-del"])
      expect(kinds.has(k)).toBe(true);

    // fromLast: the first command of the pass is already a change, not a read.
    rec.calls.length = 0;
    const sw = await r.reconcile(B, { fromLast: true });
    expect(sw.errors).toEqual([]);
    expect(sw.residual).toBe(0);
    expect(sw.changes).toBe(fromKernel.length);
    expect(rec.calls[0]?.argv.slice(0, 3)).toEqual(["ip", "-force", "-batch"]);

    // The kernel holds B exactly, in both families.
    expect(diff(B, await readActual(a.runner(), readOptionsFor(B)))).toEqual([]);
    const g1 = topology.nodes[1] as Node;
    const g2 = topology.nodes[2] as Node;
    expect(viaOf(A, 6)).not.toBe(viaOf(B, 6));
    for (const fam of ["-4", "-6"]) {
      const routes = (await a.exec(["ip", fam, "route", "show", "table", "200"])).stdout.trim().split("\n");
      expect(routes.length).toBe(2); // c2's pod and service CIDRs of this family, one route each
      for (const line of routes) {
        expect(line).not.toContain("nexthop"); // no ECMP sibling left by the replace
        expect(line).toContain(`via ${viaOf(B, fam === "-4" ? 4 : 6)} `); // g2's bridge address
      }
      const neigh = (
        await a.exec(["ip", fam, "neigh", "show", "dev", fam === "-4" ? "vx-bridge" : "vx-bridge-6"])
      ).stdout;
      expect(neigh.trim().split("\n").length).toBe(1);
      expect(neigh).toContain("PERMANENT");
    }
    const fdb = (await a.exec(["bridge", "fdb", "show", "dev", "vx-bridge-6"])).stdout;
    expect(fdb).toContain(`dst ${g2.ipv6}`);
    expect(fdb).not.toContain(`dst ${g1.ipv6} `);
    expect(fdb).not.toContain(`dst ${g1.ipv6}\n`);
  });

  test("a pass from memory misses tampering, its verify read reports it, and the next pass repairs it", async () => {
    const { a } = await makePair(scope);
    const A = planFor("g1");
    const B = planFor("g2");
    const r = new Reconciler({ runner: a.runner() });
    expect((await r.reconcile(A)).residual).toBe(0);
    // Behind the reconciler's back: the IPv6 policy rule goes.
    await a.exec(["ip", "-6", "rule", "del", "priority", "200"]);
    const sw = await r.reconcile(B, { fromLast: true });
    expect(sw.counts["rule-add"]).toBeUndefined();
    expect(sw.residual).toBe(1);
    // Not converged any more: this pass reads the kernel although asked to start from memory.
    const again = await r.reconcile(B, { fromLast: true });
    expect(again.counts["rule-add"]).toBe(1);
    expect(again.residual).toBe(0);
    expect(diff(B, await readActual(a.runner(), readOptionsFor(B)))).toEqual([]);
  });
});
