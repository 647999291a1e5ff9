import { describe, expect, test } from "bun:test";
import { openStore } from "../../internal/store/index.ts";
import type { MemberState } from "../../internal/topology/index.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { loopOn, makePair, NODES, PAIR_TOPOLOGY, topoNode } from "./fixtures.ts";

const { root, scope } = await netnsSuite();

const n3 = topoNode("n3", "c2", "192.168.77.3", "10.2.1.0/24");
const dsts = (routes: Array<{ dst: string }> | undefined) => (routes ?? []).map((r) => r.dst).sort();

describe.skipIf(!root)("agent control loop on a real kernel", () => {
  test("a resync with unchanged inputs reuses the plan and still repairs the kernel; replica and membership changes re-plan", async () => {
    const { a } = await makePair(scope);
    const store = await openStore(":memory:", { node: "n1" });
    store.seed(PAIR_TOPOLOGY);
    let members: Record<string, MemberState> = { n2: "alive" };
    const loop = await loopOn(a, store, { members: () => members });
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
      store.seed({ ...PAIR_TOPOLOGY, nodes: [...PAIR_TOPOLOGY.nodes, n3] });
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
