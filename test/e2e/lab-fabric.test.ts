/**
 * The lab's underlay (no agents): the router between cluster LANs keeps its MAC address when a
 * node joins a LAN, so the nodes already there keep reaching the other clusters over IPv4 and IPv6
 * with the neighbour entries they have.
 *
 * Regression test for the "IPv6 from one c1 node to c2 broken for > 20 s after gateway failover"
 * bug (issue 3a). The router's addresses used to sit on the LAN bridge itself; a Linux bridge
 * without an explicit MAC takes the lowest MAC of its ports, so a node added with a lower port MAC
 * (1 time in 3 in gossip-lab.test.ts) silently changed the router's MAC. The nodes kept the old MAC
 * in their neighbour caches; frames to it were delivered only when they came in through the port
 * owning that MAC (otherwise PACKET_OTHERHOST, dropped by IP), so the other node lost its route out
 * of the LAN until neighbour unreachability detection caught up (20–40 s). IPv4 recovered before
 * anyone looked because gossip (IPv4) kept using the router; the IPv6 entry sat idle and STALE
 * until the failover test sent the first IPv6 underlay packet. The Kosmos state (routes, permanent
 * neighbours, FDB) was right all along. Since 2f531f4 the router talks to each LAN through a veth of
 * its own (fixed MAC) and the bridges live in the switch namespace without addresses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DEFAULT_LAB, parseLabConfig } from "../../internal/lab/config.ts";
import { labDown } from "../../internal/lab/lab.ts";
import { buildNetwork, buildNode, cniMac } from "../../internal/lab/network.ts";
import { planAddNode } from "../../internal/lab/ops.ts";
import { type LabPlan, planLab } from "../../internal/lab/plan.ts";
import { inNs, ipBatch, sh } from "../../internal/lab/sh.ts";
import { labName } from "./helpers.ts";

const LAB = labName("fb");
const T = 60_000;
let plan: LabPlan;

beforeAll(async () => {
  await labDown(LAB);
  plan = planLab(LAB, parseLabConfig(DEFAULT_LAB));
  await buildNetwork(plan);
}, T);

afterAll(async () => {
  await labDown(LAB);
}, T);

async function routerMac(ns: string, dev: string): Promise<string> {
  const r = await sh(["ip", "-n", ns, "-j", "link", "show", dev]);
  return (JSON.parse(r.stdout) as Array<{ address: string }>)[0]?.address ?? "";
}

/** One ping, no retry: a stale neighbour entry must not be needed to be re-learned. */
async function pingOnce(ns: string, family: 4 | 6, ip: string): Promise<boolean> {
  const r = await inNs(ns, ["ping", `-${family}`, "-c1", "-W1", "-q", ip], { allowFail: true });
  return r.code === 0;
}

describe("lab fabric", () => {
  test(
    "a node joining a LAN with the lowest port MAC leaves the router's MAC and the other nodes' IPv4/IPv6 paths intact",
    async () => {
      const c1 = plan.nodes.filter((n) => n.cluster === "c1");
      const far = plan.nodes.find((n) => n.name === "c3-node-1");
      const lan = plan.clusters.find((c) => c.name === "c1")?.bridge;
      if (!far || !lan || c1.length < 2) throw new Error("default lab changed");
      // Every c1 node learns the router's MAC (v4 and v6 neighbour entries) by using it.
      for (const n of c1) {
        expect(await pingOnce(n.ns, 4, far.ipv4)).toBe(true);
        expect(await pingOnce(n.ns, 6, far.ipv6)).toBe(true);
      }
      const before = await routerMac(plan.fabricNs, lan);
      const { plan: next, node } = planAddNode(plan, "c1");
      await buildNode(next, node);
      // The new port gets a MAC below every other one on the LAN (a bridge without an explicit MAC
      // takes its lowest port's): deterministic version of what a random MAC did 1 time in 3.
      await ipBatch(next.switchNs, [`link set ${node.fabricIf} address 02:00:00:00:00:01`]);
      expect(await routerMac(plan.fabricNs, lan)).toBe(before);
      const failed: string[] = [];
      for (const n of c1) {
        if (!(await pingOnce(n.ns, 4, far.ipv4))) failed.push(`${n.name} v4`);
        if (!(await pingOnce(n.ns, 6, far.ipv6))) failed.push(`${n.name} v6`);
      }
      expect(failed).toEqual([]);
      // And the new node itself gets through.
      expect(await pingOnce(node.ns, 6, far.ipv6)).toBe(true);
    },
    T,
  );

  test(
    "a pod keeps its gateway when the cni0 port with the lowest MAC leaves (cni0's MAC is fixed)",
    async () => {
      const node = plan.nodes.find((n) => n.name === "c1-node-1");
      const peer = plan.nodes.find((n) => n.name === "c1-node-2");
      const pod = node?.pods[0];
      if (!node || !peer || !pod) throw new Error("default lab changed");
      expect(await routerMac(node.ns, "cni0")).toBe(cniMac(node.ns));
      // Another pod's port with a MAC below every other one joins cni0; this pod learns the
      // gateway's MAC then (an unpinned bridge would have taken that port's MAC), and the port leaves.
      await ipBatch(node.ns, [
        "link add kfxlow address 02:00:00:00:00:01 type veth peer name kfxpeer",
        "link set kfxlow master cni0 up",
      ]);
      await inNs(pod.ns, ["ip", "neigh", "flush", "all"]);
      expect(await pingOnce(pod.ns, 4, peer.ipv4)).toBe(true);
      await ipBatch(node.ns, ["link del kfxlow"]);
      expect(await routerMac(node.ns, "cni0")).toBe(cniMac(node.ns));
      // with the neighbour entry it has (no re-learning): before the fix, the bridge flooded these frames
      expect(await pingOnce(pod.ns, 4, peer.ipv4)).toBe(true);
    },
    T,
  );
});
