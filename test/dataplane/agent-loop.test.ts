import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ControlLoop } from "../../internal/agent/loop.ts";
import { detectCapabilities, Reconciler } from "../../internal/dataplane/index.ts";
import { createRegistry, silentLogger } from "../../internal/observability/index.ts";
import { openStore } from "../../internal/store/index.ts";
import type { MemberState, Node, Topology } from "../../internal/topology/index.ts";
import { canUseNetns, NetnsScope, sweepLeftovers } from "../helpers/netns.ts";
import { makePair, NODES } from "./fixtures.ts";

const root = await canUseNetns();
const scope = new NetnsScope();

beforeAll(async () => {
  if (root) await sweepLeftovers();
});
afterEach(() => scope.cleanup());
afterAll(() => scope.cleanup());

const node = (name: string, cluster: string, ipv4: string, pod: string): Node => ({
  name,
  cluster,
  ipv4,
  podCIDRs: [pod],
  gatewayCandidate: false,
  interfaceName: "ul0",
});

const cluster = (name: string, pods: string, services: string): Topology["clusters"][number] => ({
  name,
  networkType: "p2p",
  ipFamily: "ipv4",
  podCIDRs: [pods],
  serviceCIDRs: [services],
  globalCIDRs: {},
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
});

const topology: Topology = {
  clusters: [cluster("c1", "10.1.0.0/16", "10.201.0.0/16"), cluster("c2", "10.2.0.0/16", "10.202.0.0/16")],
  nodes: [
    node("n1", "c1", NODES[1].underlay4, NODES[1].pod4),
    node("n2", "c2", NODES[2].underlay4, NODES[2].pod4),
  ],
};
const n3 = node("n3", "c2", "192.168.77.3", "10.2.1.0/24");
const dsts = (routes: Array<{ dst: string }> | undefined) => (routes ?? []).map((r) => r.dst).sort();

describe.skipIf(!root)("agent control loop on a real kernel", () => {
  test("a resync with unchanged inputs reuses the plan and still repairs the kernel; replica and membership changes re-plan", async () => {
    const { a } = await makePair(scope);
    const runner = a.runner();
    const store = await openStore(":memory:", { node: "n1" });
    store.seed(topology);
    let members: Record<string, MemberState> = { n2: "alive" };
    const loop = new ControlLoop({
      node: "n1",
      store,
      reconciler: new Reconciler({ runner }),
      capabilities: await detectCapabilities(runner),
      logger: silentLogger(),
      registry: createRegistry(),
      members: () => members,
      debounceMs: 0,
      resyncMs: 60_000,
    });
    try {
      expect((await loop.runNow("start")).applied).toBe(true);
      await loop.runNow("gateways settle"); // the first pass's gateways become an input of the next
      const planned = loop.status.plan;
      expect(dsts(planned?.routes)).toEqual([NODES[2].pod4, "10.202.0.0/16"]);

      const same = await loop.runNow("resync");
      expect(same.plan).toBe(planned); // not re-planned
      expect(same.lastReport?.changes).toBe(0);

      // Tampering is still repaired with the reused plan (the kernel is read on every pass).
      await a.exec(["ip", "route", "del", NODES[2].pod4, "table", String(planned?.table)]);
      const repaired = await loop.runNow("resync");
      expect(repaired.plan).toBe(planned);
      expect(repaired.lastReport?.counts["route-replace"]).toBe(1);
      expect(repaired.applied).toBe(true);

      // A replica change re-plans.
      store.seed({ ...topology, nodes: [...topology.nodes, n3] });
      members = { n2: "alive", n3: "alive" };
      const grown = await loop.runNow("replica");
      expect(grown.plan).not.toBe(planned);
      expect(dsts(grown.plan?.routes)).toEqual([NODES[2].pod4, "10.2.1.0/24", "10.202.0.0/16"]);

      // So does a membership change (n3 left: its route goes).
      const before = grown.plan;
      members = { n2: "alive", n3: "left" };
      const shrunk = await loop.runNow("membership");
      expect(shrunk.plan).not.toBe(before);
      expect(dsts(shrunk.plan?.routes)).toEqual([NODES[2].pod4, "10.202.0.0/16"]);
      expect(shrunk.applied).toBe(true);
    } finally {
      await loop.stop();
      store.close();
    }
  });
});
