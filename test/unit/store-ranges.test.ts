import { afterEach, describe, expect, test } from "bun:test";
import {
  converged,
  MemoryReplica,
  type RangeDigest,
  rowHash,
  Sim,
  seededRandom,
  splitRange,
  xorHash,
  ZERO_HASH,
} from "../../internal/gossip/index.ts";
import {
  CONTROLLER_OWNER,
  mayWrite,
  openStore,
  packHlc,
  type ReplicatedRow,
  type Store,
} from "../../internal/store/index.ts";

const stores: Store[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

/** A replica in memory (the range code does not depend on the file). */
async function open(name: string): Promise<Store> {
  const s = await openStore(":memory:", { node: name });
  stores.push(s);
  return s;
}

function rng(seed: number): () => number {
  const r = seededRandom(seed);
  return () => r.next();
}

const BASE = packHlc(Date.now() - 60_000, 0);
const OWNERS = [CONTROLLER_OWNER, "a1", "a2", "a3"];

/**
 * Random rows the store accepts in shape (some an owner may not write: both replicas refuse those):
 * per-owner increasing versions that collide across owners, tombstones, and node rows that move from
 * the controller to the node itself.
 */
function randomRows(rand: () => number, n: number, keySpace = 150): ReplicatedRow[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const next = new Map<string, number>();
  const rows: ReplicatedRow[] = [];
  for (let i = 0; i < n; i++) {
    const owner = pick(OWNERS);
    const version = (next.get(owner) ?? BASE) + 1 + Math.floor(rand() * 40);
    next.set(owner, version);
    const table = pick(["clusters", "nodes", "nodes", "node_status"] as const);
    const key =
      table === "clusters"
        ? `c${Math.floor(rand() * 20)}`
        : owner === CONTROLLER_OWNER || rand() < 0.2
          ? pick([...OWNERS.slice(1), `n${Math.floor(rand() * keySpace)}`])
          : owner;
    const deleted = rand() < 0.1;
    let data: Record<string, unknown> | null = null;
    if (!deleted) {
      if (table === "clusters")
        data = { name: key, networkType: "p2p", ipFamily: "ipv4", podCIDRs: ["10.1.0.0/16"] };
      else if (table === "nodes")
        data = {
          name: key,
          cluster: "c1",
          ipv4: `192.168.0.${i % 250}`,
          podCIDRs: [],
          gatewayCandidate: false,
        };
      else data = { name: key, agentVersion: `v${i}` };
    }
    rows.push({ table, key, owner, version, deleted, data });
  }
  return rows;
}

/** The definition, computed the slow way: filter the owner's rows into each range, XOR their hashes. */
function naiveRangeDigest(
  memory: MemoryReplica,
  owner: string,
  lo: number,
  hi: number,
  parts: number,
): RangeDigest[] {
  return splitRange(lo, hi, parts).map(([l, h]) => {
    const rows = memory.rowsOf(owner).filter((r) => r.version > l && r.version <= h);
    return {
      lo: l,
      hi: h,
      count: rows.length,
      hash: rows.reduce((x, r) => xorHash(x, rowHash(r)), ZERO_HASH),
    };
  });
}

const identity = (r: ReplicatedRow): string => `${r.version}/${r.table}/${r.key}/${r.owner}/${r.deleted}`;

/** Compare the store's range answers with the in-memory replica's over random ranges of every owner. */
function expectSameRanges(store: Store, memory: MemoryReplica, rand: () => number): void {
  expect(store.digest()).toEqual(memory.digest());
  for (const d of memory.digest()) {
    const full = store.rangeDigest(d.owner, -1, d.maxVersion, 16);
    expect(full).toEqual(memory.rangeDigest(d.owner, -1, d.maxVersion, 16));
    // the ranges partition the owner: counts add up, hashes XOR to the owner's digest
    expect(full.reduce((n, r) => n + r.count, 0)).toBe(d.count);
    expect(full.reduce((h, r) => xorHash(h, r.hash), ZERO_HASH)).toBe(d.hash);
    for (let k = 0; k < 25; k++) {
      const lo = BASE - 5 + Math.floor(rand() * (d.maxVersion - BASE + 10));
      const hi = lo + Math.floor(rand() * (d.maxVersion - BASE + 10)) - 5;
      const parts = 1 + Math.floor(rand() * 20);
      const digests = store.rangeDigest(d.owner, lo, hi, parts);
      expect(digests).toEqual(memory.rangeDigest(d.owner, lo, hi, parts));
      expect(digests).toEqual(naiveRangeDigest(memory, d.owner, lo, hi, parts));
      const rows = store.rowsInRange(d.owner, lo, hi);
      expect(rows.map(identity).sort()).toEqual(memory.rowsInRange(d.owner, lo, hi).map(identity).sort());
      for (let i = 1; i < rows.length; i++)
        expect(rows[i]!.version).toBeGreaterThanOrEqual(rows[i - 1]!.version);
    }
  }
  expect(store.rangeDigest("nobody", -1, BASE, 4)).toEqual(memory.rangeDigest("nobody", -1, BASE, 4));
  expect(store.rowsInRange("nobody", -1, BASE)).toEqual([]);
}

describe("range reconciliation in the SQLite store", () => {
  test("property: same range digests and rows in range as the in-memory replica, also after further merges", async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = rng(seed);
      // the later rows also write keys the first ones did not (new rows of an indexed owner)
      const rows = [...randomRows(rand, 400), ...randomRows(rand, 200, 400)];
      const store = await open(`p${seed}`);
      const memory = new MemoryReplica({ allow: (r) => mayWrite(r.table, r.owner, r.key) });
      const [first, rest] = [rows.slice(0, 400), rows.slice(400)];
      store.merge(first);
      memory.merge(first);
      expectSameRanges(store, memory, rand);
      // later rows replace, tombstone and move rows between owners: cached indexes must follow
      for (let i = 0; i < rest.length; i += 50) {
        store.merge(rest.slice(i, i + 50));
        memory.merge(rest.slice(i, i + 50));
      }
      expectSameRanges(store, memory, rand);
      expect(store.stats.rejected.not_owner).toBeGreaterThan(0);
    }
  });

  test("single changes after the indexes were built: a new row, a row moving to another owner, a tombstone", async () => {
    const store = await open("s");
    const memory = new MemoryReplica({ allow: (r) => mayWrite(r.table, r.owner, r.key) });
    const rows = randomRows(rng(11), 300);
    store.merge(rows);
    memory.merge(rows);
    const top = Math.max(...rows.map((r) => r.version));
    const node = (key: string) => ({ name: key, cluster: "c1", podCIDRs: [], gatewayCandidate: false });
    const changes: ReplicatedRow[] = [
      {
        table: "nodes",
        key: "fresh",
        owner: CONTROLLER_OWNER,
        version: top + 1,
        deleted: false,
        data: node("fresh"),
      },
      // moves to the controller (from a3, or is new), then back to a3
      {
        table: "nodes",
        key: "a3",
        owner: CONTROLLER_OWNER,
        version: top + 2,
        deleted: false,
        data: node("a3"),
      },
      { table: "nodes", key: "a3", owner: "a3", version: top + 3, deleted: false, data: node("a3") },
      { table: "nodes", key: "fresh", owner: CONTROLLER_OWNER, version: top + 4, deleted: true, data: null },
    ];
    for (const change of changes) {
      expectSameRanges(store, memory, rng(12));
      expect(store.merge([change])).toHaveLength(1);
      memory.merge([change]);
    }
    expectSameRanges(store, memory, rng(13));
  });

  test("local writes and a rolled back write keep the range digests right", async () => {
    const store = await open("a1");
    const memory = new MemoryReplica();
    const rows = randomRows(rng(9), 300).filter((r) => mayWrite(r.table, r.owner, r.key));
    store.merge(rows);
    memory.merge(rows);
    const before = store.rangeDigest("a1", -1, Number.MAX_SAFE_INTEGER, 8);
    const written = store.writeLocal("node_status", "a1", { agentVersion: "local" });
    expect(written).not.toBeNull();
    memory.merge([written!]);
    expect(() => store.writeLocal("nodes", "a1", { cluster: "" })).toThrow();
    const after = store.rangeDigest("a1", -1, Number.MAX_SAFE_INTEGER, 8);
    expect(after).not.toEqual(before);
    expect(after).toEqual(memory.rangeDigest("a1", -1, Number.MAX_SAFE_INTEGER, 8));
  });

  test("splitRange covers (lo, hi] with the requested number of parts", () => {
    expect(splitRange(-1, 1000, 16)).toHaveLength(16);
    expect(splitRange(10, 10, 4)).toEqual([]);
  });

  test("a gap inside a big owner is repaired between two SQLite replicas without resending the owner", async () => {
    const seedRows: ReplicatedRow[] = Array.from({ length: 5000 }, (_, i) => ({
      table: "nodes",
      key: `seed-${i}`,
      owner: CONTROLLER_OWNER,
      version: BASE + i * 7,
      deleted: false,
      data: { name: `seed-${i}`, cluster: "c1", podCIDRs: [], gatewayCandidate: false },
    }));
    const a = await open("ga");
    const b = await open("gb");
    a.merge(seedRows);
    b.merge(seedRows.filter((_, i) => i !== 1234 && i !== 4000));
    expect(b.digest()[0]!.maxVersion).toBe(a.digest()[0]!.maxVersion);
    const sim = new Sim({ seed: 21 });
    sim.addNode("ga", { members: ["ga", "gb"] }, a);
    sim.addNode("gb", { members: ["ga", "gb"] }, b);
    expect(sim.runUntil(() => converged(sim), 20_000)).toBe(true);
    expect(b.rows()).toHaveLength(5000);
    expect(sim.totalBytes()).toBeLessThan(JSON.stringify(seedRows).length / 10);
    expect(sim.node("ga").stats.rangeRequests + sim.node("gb").stats.rangeRequests).toBeGreaterThan(0);
  });
});
