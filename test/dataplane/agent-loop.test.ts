import { describe, expect, test } from "bun:test";
import { FULL_NFT_EVERY } from "../../internal/agent/nft-trust.ts";
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

  // The kernel watcher here reports a running nft monitor and never an event: what a resync does
  // then is all that stands between unreported tampering and its repair.
  test("resyncs take the nft table as verified while the nft monitor runs; every sixth lists it and repairs tampering nobody reported", async () => {
    const { a } = await makePair(scope);
    const store = await openStore(":memory:", { node: "n1" });
    store.seed(PAIR_TOPOLOGY);
    const monitorSince = Date.now() - 5000;
    const loop = await loopOn(a, store, {
      kernelWatch: () => ({ start() {}, async stop() {}, since: () => monitorSince }),
    });
    try {
      loop.start(); // the watcher is made by start(), which also runs the first pass
      const started = await loop.runNow("api");
      expect(started).toMatchObject({ applied: true, lastReport: { nftRead: "listed" } });
      const reads = async (n: number) => {
        const out: Array<[string | undefined, number]> = [];
        for (let i = 0; i < n; i++) {
          const r = (await loop.runNow("resync")).lastReport;
          out.push([r?.nftRead, r?.counts["nft-apply"] ?? 0]);
        }
        return out;
      };
      const trusted = Array(FULL_NFT_EVERY - 1).fill(["trusted", 0]);
      expect(await reads(FULL_NFT_EVERY)).toEqual([...trusted, ["listed", 0]]);
      await a.exec(["nft", "flush", "chain", "inet", "kosmos", "nat_post"]);
      expect(await reads(FULL_NFT_EVERY)).toEqual([...trusted, ["listed", 1]]);
      expect(loop.status.lastReport?.residual).toBe(0);
      // a kernel-event pass lists at once, whatever the resync count
      expect((await loop.runNow("kernel")).lastReport?.nftRead).toBe("listed");
    } finally {
      await loop.stop();
      store.close();
    }
  });
});
