/** Dataplane benchmarks (root; run directly: `bun test/bench/dataplane.ts`). */
import { apply, diff, readActual, Reconciler, renderNft } from "../../internal/dataplane/index.ts";
import type { HostState } from "../../internal/planner/hoststate.ts";
import { emptyState, makePair, NODES, p2pState } from "../dataplane/fixtures.ts";
import { NetnsScope } from "../helpers/netns.ts";
import { type BenchResult, printResults } from "./lib.ts";

const ms = (t0: number): number => performance.now() - t0;
const ip4 = (i: number, base: number): string => `${base}.${(i >> 8) & 255}.${i & 255}.0/24`;

function withPeers(s: HostState, n: number): HostState {
  const out = structuredClone(s);
  for (let i = 0; i < n; i++) {
    const ul = `192.168.${100 + (i >> 8)}.${i & 255}`;
    const mac = `aa:01:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
    const ov = `220.${100 + (i >> 8)}.${i & 255}.1`;
    out.fdb.push({ dev: "vx-bridge", mac: "00:00:00:00:00:00", dst: ul }, { dev: "vx-bridge", mac, dst: ul });
    out.neighbors.push({ dev: "vx-bridge", ip: ov, mac, family: 4 });
    out.routes.push({ dst: ip4(i, 11), via: ov, dev: "vx-bridge", family: 4, table: 200 });
  }
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const scope = new NetnsScope();
  const results: BenchResult[] = [];
  try {
    const { a, aIf } = await makePair(scope);
    const base = p2pState(NODES[1], NODES[2], aIf);
    await new Reconciler({ runner: a.runner() }).reconcile(base);

    // Baseline: plain `ip -batch` of 10,000 routes.
    const lines = Array.from(
      { length: 10000 },
      (_, i) => `route add ${ip4(i, 12)} via ${NODES[2].overlay4} dev vx-bridge table 201`,
    );
    let t0 = performance.now();
    await a.exec(["ip", "-batch", "-"], { input: lines.join("\n") + "\n" });
    const baseline = ms(t0);

    // Kosmos: reconcile adding 10,000 routes (read + diff + apply + verify).
    const big = structuredClone(base);
    for (let i = 0; i < 10000; i++)
      big.routes.push({ dst: ip4(i, 13), via: NODES[2].overlay4, dev: "vx-bridge", family: 4, table: 200 });
    const r = new Reconciler({ runner: a.runner(), verify: false });
    t0 = performance.now();
    const rep = await r.reconcile(big);
    const v = ms(t0);
    results.push({
      name: "reconcile 10k new routes",
      value: v,
      unit: "ms",
      baseline: { name: "ip -batch 10k routes", value: baseline },
      target: "<= 2000 ms",
      ok: v <= 2000 && rep.errors.length === 0,
    });
    await new Reconciler({ runner: a.runner() }).uninstall();
    await a.exec(["ip", "route", "flush", "table", "201"]);

    // Unchanged reconcile with 1,000 peers.
    const peers = withPeers(base, 1000);
    const rp = new Reconciler({ runner: a.runner() });
    await rp.reconcile(peers);
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      t0 = performance.now();
      const x = await rp.reconcile(peers);
      samples.push(ms(t0));
      if (x.changes !== 0) throw new Error(`expected no changes, got ${x.changes}`);
    }
    const med = samples.sort((x, y) => x - y)[2] ?? Number.NaN;
    results.push({
      name: "unchanged reconcile, 1000 peers (median of 5)",
      value: med,
      unit: "ms",
      target: "<= 100 ms",
      ok: med <= 100,
    });
    await rp.uninstall();

    // nft: 10,000 global-IP mappings, render + apply.
    const nat = structuredClone(base);
    for (let i = 0; i < 10000; i++) {
      nat.nft.globalMaps.push({
        local: `10.${100 + (i >> 8)}.${i & 255}.0/24`,
        global: `242.${100 + (i >> 8)}.${i & 255}.0/24`,
        family: 4,
      });
    }
    t0 = performance.now();
    const rendered = renderNft(nat.nft);
    const renderMs = ms(t0);
    results.push({ name: "render nft, 10k mappings", value: renderMs, unit: "ms" });
    t0 = performance.now();
    const act = await readActual(a.runner());
    const nrep = await apply(
      a.runner(),
      diff({ ...emptyState(), nft: nat.nft }, act).filter((c) => c.kind === "nft-apply"),
    );
    const applyMs = ms(t0);
    results.push({
      name: "read+apply nft, 10k mappings",
      value: applyMs,
      unit: "ms",
      ok: nrep.errors.length === 0,
    });
    void rendered;
    await new Reconciler({ runner: a.runner() }).uninstall();
  } finally {
    await scope.cleanup();
  }
  return results;
}

if (import.meta.main) printResults(await run());
