/**
 * Tamper repair driven by kernel events: the ControlLoop with the real Reconciler and the real
 * KernelWatcher in a test namespace, with the periodic resync out of the way (600 s), so only the
 * watcher can repair. Polls with deadlines; no timing assertions.
 */
import { describe, expect, test } from "bun:test";
import type { ControlLoop } from "../../internal/agent/loop.ts";
import { KernelWatcher } from "../../internal/dataplane/watch.ts";
import { openStore, type Store } from "../../internal/store/index.ts";
import { execHost, type Netns } from "../helpers/netns.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { loopOn, makePair, NODES, PAIR_TOPOLOGY } from "./fixtures.ts";

const { root, scope } = await netnsSuite();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(
  what: string,
  cond: () => Promise<boolean> | boolean,
  deadlineMs = 15_000,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for: ${what}`);
}

/** Wait until the loop has run no pass for `quietMs` (its own changes have settled). */
async function settle(loop: ControlLoop, quietMs = 1000): Promise<void> {
  let last = -1;
  await until(
    "passes settle",
    async () => {
      const now = loop.status.runs;
      if (now === last) return true;
      last = now;
      await sleep(quietMs);
      return false;
    },
    30_000,
  );
}

async function harness(ns: Netns, store: Store) {
  const watchers: KernelWatcher[] = [];
  const loop = await loopOn(ns, store, {
    resyncMs: 600_000,
    kernelWatch: (onEvent) => {
      const w = new KernelWatcher({ onEvent, prefix: ns.prefix(), backoffMs: 100 });
      watchers.push(w);
      return w;
    },
  });
  return { loop, watchers };
}

/** Processes living in the namespace (the watcher's monitors: nothing else runs there). */
const nsPids = async (ns: Netns): Promise<number[]> =>
  (await execHost(["ip", "netns", "pids", ns.name])).stdout.split("\n").filter(Boolean).map(Number);

const has = async (ns: Netns, argv: string[], needle: string): Promise<boolean> =>
  (await ns.exec(argv, { allowFail: true })).stdout.includes(needle);

describe.skipIf(!root)("kernel-event tamper repair (real kernel)", () => {
  test("owned route, FDB entry, neighbour and nft table come back with the resync out of the way; foreign changes trigger nothing; no loop; monitors restart and stop", async () => {
    const { a } = await makePair(scope);
    const store = await openStore(":memory:", { node: "n1" });
    store.seed(PAIR_TOPOLOGY);
    const { loop, watchers } = await harness(a, store);
    try {
      loop.start();
      await until("first apply", () => loop.status.applied);
      await settle(loop);
      const table = String(loop.status.plan?.table);
      const route = ["ip", "route", "show", "table", table, "proto", "75"];
      const fdb = ["bridge", "fdb", "show", "dev", "vx-bridge"];
      const nft = ["nft", "list", "table", "inet", "kosmos"];
      const peerMac = loop.status.plan?.fdb.find((f) => f.mac !== "00:00:00:00:00:00")?.mac ?? "none";
      const peerOverlay = loop.status.plan?.neighbors[0]?.ip ?? "none";
      expect(await has(a, route, NODES[2].pod4)).toBe(true);
      expect(await has(a, fdb, peerMac)).toBe(true);
      const nftPlanned = (await a.exec(nft, { allowFail: true })).code === 0;
      expect(nftPlanned).toBe(loop.status.plan?.nft !== undefined);

      // 1. An owned route.
      let passes = loop.status.kernelPasses;
      await a.exec(["ip", "route", "del", NODES[2].pod4, "table", table]);
      await until("route repaired", () => has(a, route, NODES[2].pod4));
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(loop);

      // 2. An owned FDB entry.
      passes = loop.status.kernelPasses;
      await a.exec(["bridge", "fdb", "del", peerMac, "dev", "vx-bridge", "dst", NODES[2].underlay4]);
      await until("fdb repaired", () => has(a, fdb, peerMac));
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(loop);

      // 3. An owned neighbour.
      passes = loop.status.kernelPasses;
      const neigh = ["ip", "neigh", "show", "dev", "vx-bridge", "nud", "permanent"];
      expect(await has(a, neigh, peerOverlay)).toBe(true);
      await a.exec(["ip", "neigh", "del", peerOverlay, "dev", "vx-bridge"]);
      await until("neighbour repaired", () => has(a, neigh, peerOverlay));
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(loop);

      // 4. The nft table (flushed, then deleted).
      if (nftPlanned) {
        const listing = (await a.exec(nft)).stdout;
        passes = loop.status.kernelPasses;
        await a.exec(["nft", "flush", "table", "inet", "kosmos"]);
        await until(
          "nft table refilled",
          async () => (await a.exec(nft, { allowFail: true })).stdout === listing,
        );
        expect(loop.status.kernelPasses).toBeGreaterThan(passes);
        await settle(loop);
        passes = loop.status.kernelPasses;
        await a.exec(["nft", "delete", "table", "inet", "kosmos"]);
        await until("nft table repaired", async () => (await a.exec(nft, { allowFail: true })).code === 0);
        expect(loop.status.kernelPasses).toBeGreaterThan(passes);
        await settle(loop);
      }

      // 5. Foreign changes (another table, a neighbour on the underlay, a foreign nft table) do
      // not trigger a pass.
      const runs = loop.status.runs;
      passes = loop.status.kernelPasses;
      await a.sh(
        `ip route add 10.99.0.0/24 via ${NODES[2].underlay4} table 100
         ip route add 10.98.0.0/24 via ${NODES[2].underlay4} proto static
         ip neigh replace ${NODES[2].underlay4} lladdr aa:bb:cc:dd:ee:01 dev ul0 nud permanent
         nft add table inet kt_foreign
         ip route del 10.99.0.0/24 table 100
         ip route del 10.98.0.0/24
         ip neigh del ${NODES[2].underlay4} dev ul0
         nft delete table inet kt_foreign`,
      );
      await sleep(1000);
      expect(loop.status.kernelPasses).toBe(passes);
      expect(loop.status.runs).toBe(runs);

      // 6. No loop: the passes' own changes settled (settle() returned after each repair); one more
      // idle second runs nothing.
      await sleep(1000);
      expect(loop.status.runs).toBe(runs);

      // 7. A monitor that dies is restarted and repair keeps working.
      const w = watchers[0];
      expect(w).toBeDefined();
      const pids = await nsPids(a);
      expect(pids.length).toBeGreaterThanOrEqual(2);
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await until(
        "monitors restarted",
        () => Object.values(w?.restarts ?? {}).reduce((x, y) => x + y, 0) >= pids.length,
      );
      await until("monitors running again", async () => (await nsPids(a)).length >= pids.length);
      await sleep(300); // the restarted monitors subscribe
      passes = loop.status.kernelPasses;
      await a.exec(["ip", "route", "del", NODES[2].pod4, "table", table]);
      await until("route repaired after monitor restart", () => has(a, route, NODES[2].pod4));
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
    } finally {
      await loop.stop();
      store.close();
    }
    // Stopping the loop kills the monitors.
    await until("monitors gone", async () => (await nsPids(a)).length === 0, 5000);
  }, 120_000);

  test("owned xfrm policies come back after a delete and after a flush; a foreign policy triggers nothing", async () => {
    const { a } = await makePair(scope);
    const store = await openStore(":memory:", { node: "n1" });
    // Elastic IPs on both nodes: the plan has IPsec policies (no states: no ipsecSecret here).
    const [n1, n2] = PAIR_TOPOLOGY.nodes;
    store.seed({
      ...PAIR_TOPOLOGY,
      nodes: [
        { ...n1!, elasticIP: "198.51.100.1" },
        { ...n2!, elasticIP: "198.51.100.2" },
      ],
    });
    const { loop } = await harness(a, store);
    const policies = async () =>
      (await a.exec(["ip", "xfrm", "policy", "list"])).stdout
        .split("\n")
        .filter((l) => l.startsWith("src "))
        .sort();
    try {
      loop.start();
      await until("first apply", () => loop.status.applied);
      await settle(loop);
      const planned = await policies();
      expect(planned.length).toBeGreaterThan(0);
      expect(planned.length).toBe(loop.status.plan?.xfrm.policies.length ?? -1);

      // 1. One owned policy deleted.
      const [src, , dst] = (planned[0] ?? "").split(" ").slice(1);
      const dir = loop.status.plan?.xfrm.policies.find((p) => p.src === src && p.dst === dst)?.dir ?? "out";
      let passes = loop.status.kernelPasses;
      await a.exec(["ip", "xfrm", "policy", "delete", "src", src ?? "", "dst", dst ?? "", "dir", dir]);
      await until("xfrm policy repaired", async () => (await policies()).join() === planned.join());
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(loop);

      // 2. Every policy flushed.
      passes = loop.status.kernelPasses;
      await a.exec(["ip", "xfrm", "policy", "flush"]);
      await until(
        "xfrm policies repaired after a flush",
        async () => (await policies()).join() === planned.join(),
      );
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(loop);

      // 3. A foreign policy (reqid outside the reserved range) added and deleted: no pass.
      passes = loop.status.kernelPasses;
      const runs = loop.status.runs;
      const sel = ["src", "10.77.0.0/16", "dst", "10.78.0.0/16", "dir", "out"];
      await a.exec([
        "ip",
        "xfrm",
        "policy",
        "add",
        ...sel,
        "tmpl",
        "src",
        "192.0.2.1",
        "dst",
        "192.0.2.2",
        "proto",
        "esp",
        "reqid",
        "7",
        "mode",
        "tunnel",
      ]);
      await a.exec(["ip", "xfrm", "policy", "delete", ...sel]);
      await sleep(1000);
      expect(loop.status.kernelPasses).toBe(passes);
      expect(loop.status.runs).toBe(runs);
    } finally {
      await loop.stop();
      store.close();
    }
  }, 60_000);

  test("the monitors die with an agent killed by SIGKILL (no stop() ran)", async () => {
    if (!root) return;
    const ns = await scope.netns("kw");
    const watch = new URL("../../internal/dataplane/watch.ts", import.meta.url).pathname;
    const child = Bun.spawn(
      [
        process.execPath,
        "-e",
        `const { KernelWatcher } = await import(${JSON.stringify(watch)});
         new KernelWatcher({ onEvent() {}, prefix: ["ip", "netns", "exec", ${JSON.stringify(ns.name)}] }).start();
         setInterval(() => {}, 1000);`,
      ],
      { stdout: "ignore", stderr: "ignore" },
    );
    const pids = async () =>
      (await execHost(["ip", "netns", "pids", ns.name])).stdout.split("\n").filter((l) => l.trim() !== "");
    try {
      await until("the monitors to run in the namespace", async () => (await pids()).length >= 3);
      child.kill(9);
      await child.exited;
      await until("the monitors to die with their agent", async () => (await pids()).length === 0);
    } finally {
      child.kill(9);
      for (const pid of await pids()) process.kill(Number(pid), 9);
    }
  }, 30_000);

  test("an agent that never applied a plan touches nothing on kernel events", async () => {
    const { a } = await makePair(scope);
    const store = await openStore(":memory:", { node: "n1" }); // never seeded
    const { loop } = await harness(a, store);
    try {
      loop.start();
      await until("monitors running", async () => (await nsPids(a)).length >= 2);
      await sleep(300);
      const runs = loop.status.runs;
      const add = [
        "ip",
        "route",
        "add",
        "10.2.0.0/24",
        "via",
        NODES[2].underlay4,
        "table",
        "200",
        "proto",
        "75",
      ];
      await a.exec(add);
      await a.exec(["ip", "route", "del", "10.2.0.0/24", "table", "200"]);
      await a.exec(add);
      await until("events seen", () => loop.status.kernelEvents >= 3, 5000);
      await sleep(500);
      expect(loop.status.kernelPasses).toBe(0);
      expect(loop.status.runs).toBe(runs);
      expect(await has(a, ["ip", "route", "show", "table", "200"], "10.2.0.0/24")).toBe(true);
    } finally {
      await loop.stop();
      store.close();
    }
  }, 60_000);
});
