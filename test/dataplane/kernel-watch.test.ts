/**
 * Tamper repair driven by kernel events: the ControlLoop with the real Reconciler and the real
 * KernelWatcher in a test namespace, with the periodic resync out of the way (600 s), so only the
 * watcher can repair. No sleeps: a marker line from each monitor (monitor-sync.ts) says that the
 * monitors are subscribed and have delivered every earlier change, and the loop's `idle` that no
 * pass is pending; "nothing happened" is asserted only once both hold, when it is final.
 */
import { describe, expect, test } from "bun:test";
import { KernelWatcher, type MonitorSource } from "../../internal/dataplane/watch.ts";
import { openStore, type Store } from "../../internal/store/index.ts";
import { execHost, type Netns } from "../helpers/netns.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";
import { loopOn, makePair, NODES, PAIR_TOPOLOGY } from "./fixtures.ts";
import { MonitorTap, syncMonitors } from "./monitor-sync.ts";

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

async function harness(ns: Netns, store: Store) {
  const watchers: KernelWatcher[] = [];
  const tap = new MonitorTap();
  const loop = await loopOn(ns, store, {
    resyncMs: 600_000,
    kernelWatch: (onEvent) => {
      const w = new KernelWatcher({ onEvent, onLine: tap.onLine, prefix: ns.prefix(), backoffMs: 100 });
      watchers.push(w);
      return w;
    },
  });
  return { loop, watchers, tap, sync: () => syncMonitors(ns, tap) };
}

type Harness = Awaited<ReturnType<typeof harness>>;

/**
 * Wait until the loop is settled by construction: no pass running or pending while every kernel
 * event up to now has been handled (a marker line from each monitor), and armed (past the quiet
 * time after its last pass, in which events count as its own changes and are ignored). A pass
 * whose own changes come back late and trigger one more is waited for; passes that keep
 * triggering passes fail.
 */
async function settle(h: Harness): Promise<void> {
  for (let round = 0; round < 20; round++) {
    await until("no pass pending and kernel events armed", () => h.loop.idle && h.loop.kernelArmed, 30_000);
    const runs = h.loop.status.runs;
    await h.sync();
    if (h.loop.idle && h.loop.status.runs === runs) return;
  }
  throw new Error("the loop did not settle: passes keep triggering passes");
}

/**
 * After `change` (foreign to the agent), nothing happened, and nothing will: the monitors printed
 * lines containing each of `seen` (the change was delivered), then their markers (everything was
 * classified); no kernel event reached the loop, no pass ran and none is pending.
 */
async function expectIgnored(
  h: Harness,
  change: () => Promise<unknown>,
  seen: Array<[MonitorSource, string]>,
) {
  const events = h.loop.status.kernelEvents;
  const passes = h.loop.status.kernelPasses;
  const runs = h.loop.status.runs;
  await change();
  await h.sync();
  expect(seen.filter(([src, needle]) => !h.tap.saw(src, needle))).toEqual([]);
  expect(h.loop.status.kernelEvents).toBe(events);
  expect(h.loop.status.kernelPasses).toBe(passes);
  expect(h.loop.status.runs).toBe(runs);
  expect(h.loop.idle).toBe(true);
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
    const h = await harness(a, store);
    const { loop, watchers } = h;
    try {
      loop.start();
      await until("first apply", () => loop.status.applied);
      await settle(h);
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
      await settle(h);

      // 2. An owned FDB entry.
      passes = loop.status.kernelPasses;
      await a.exec(["bridge", "fdb", "del", peerMac, "dev", "vx-bridge", "dst", NODES[2].underlay4]);
      await until("fdb repaired", () => has(a, fdb, peerMac));
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(h);

      // 3. An owned neighbour.
      passes = loop.status.kernelPasses;
      const neigh = ["ip", "neigh", "show", "dev", "vx-bridge", "nud", "permanent"];
      expect(await has(a, neigh, peerOverlay)).toBe(true);
      await a.exec(["ip", "neigh", "del", peerOverlay, "dev", "vx-bridge"]);
      await until("neighbour repaired", () => has(a, neigh, peerOverlay));
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(h);

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
        await settle(h);
        passes = loop.status.kernelPasses;
        await a.exec(["nft", "delete", "table", "inet", "kosmos"]);
        await until("nft table repaired", async () => (await a.exec(nft, { allowFail: true })).code === 0);
        expect(loop.status.kernelPasses).toBeGreaterThan(passes);
        await settle(h);
      }

      // 5. Foreign changes (another table, a neighbour on the underlay, a foreign nft table) are
      // seen by the monitors and trigger nothing.
      await expectIgnored(
        h,
        () =>
          a.sh(
            `ip route add 10.99.0.0/24 via ${NODES[2].underlay4} table 100
             ip route add 10.98.0.0/24 via ${NODES[2].underlay4} proto static
             ip neigh replace ${NODES[2].underlay4} lladdr aa:bb:cc:dd:ee:01 dev ul0 nud permanent
             nft add table inet kt_foreign
             ip route del 10.99.0.0/24 table 100
             ip route del 10.98.0.0/24
             ip neigh del ${NODES[2].underlay4} dev ul0
             nft delete table inet kt_foreign`,
          ),
        [
          ["ip", "10.99.0.0/24"],
          ["ip", "10.98.0.0/24"],
          ["ip", "aa:bb:cc:dd:ee:01"],
          ["nft", "table inet kt_foreign"],
        ],
      );

      // 6. No loop: after all of the above, the loop is idle with every event handled (final: a
      // pass can only start from a new event), and settling again runs nothing.
      const runs = loop.status.runs;
      await settle(h);
      expect(loop.status.runs).toBe(runs);

      // 7. A monitor that dies is restarted and repair keeps working.
      const w = watchers[0];
      expect(w).toBeDefined();
      const pids = await nsPids(a);
      expect(pids.length).toBeGreaterThanOrEqual(2);
      // since("nft") names the running nft monitor: a restart changes it (loop.ts NftTrust relies on it)
      const nftSince = w?.since("nft");
      expect(nftSince).toBeNumber();
      for (const pid of pids) process.kill(pid, "SIGKILL");
      await until(
        "monitors restarted",
        () => Object.values(w?.restarts ?? {}).reduce((x, y) => x + y, 0) >= pids.length,
      );
      await until("monitors running again", async () => (await nsPids(a)).length >= pids.length);
      await until("a new nft monitor", () => (w?.since("nft") ?? nftSince) !== nftSince);
      await h.sync(); // the restarted monitors are subscribed
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
    const h = await harness(a, store);
    const { loop } = h;
    const policies = async () =>
      (await a.exec(["ip", "xfrm", "policy", "list"])).stdout
        .split("\n")
        .filter((l) => l.startsWith("src "))
        .sort();
    try {
      loop.start();
      await until("first apply", () => loop.status.applied);
      await settle(h);
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
      await settle(h);

      // 2. Every policy flushed.
      passes = loop.status.kernelPasses;
      await a.exec(["ip", "xfrm", "policy", "flush"]);
      await until(
        "xfrm policies repaired after a flush",
        async () => (await policies()).join() === planned.join(),
      );
      expect(loop.status.kernelPasses).toBeGreaterThan(passes);
      await settle(h);

      // 3. A foreign policy (reqid outside the reserved range) added and deleted: no pass.
      const sel = ["src", "10.77.0.0/16", "dst", "10.78.0.0/16", "dir", "out"];
      const tmpl = [
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
      ];
      await expectIgnored(h, async () => {
        await a.exec(["ip", "xfrm", "policy", "add", ...sel, ...tmpl]);
        await a.exec(["ip", "xfrm", "policy", "delete", ...sel]);
      }, [["xfrm", "src 10.77.0.0/16 dst 10.78.0.0/16"]]);
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
    const h = await harness(a, store);
    const { loop } = h;
    try {
      loop.start();
      await h.sync(); // monitors subscribed
      await until("the start pass to end", () => loop.status.runs >= 1 && loop.idle);
      expect(loop.status.waiting).toBeDefined();
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
      // Each event is handled (ignored: nothing was ever applied) as it arrives, so once all three
      // have arrived and nothing is pending, no pass can follow from them.
      await until("events seen", () => loop.status.kernelEvents >= 3, 15_000);
      expect(loop.idle).toBe(true);
      expect(loop.status.kernelPasses).toBe(0);
      expect(loop.status.runs).toBe(runs);
      expect(await has(a, ["ip", "route", "show", "table", "200"], "10.2.0.0/24")).toBe(true);
    } finally {
      await loop.stop();
      store.close();
    }
  }, 60_000);
});
