import { describe, expect, test } from "bun:test";
import {
  converged,
  MemoryReplica,
  type Random,
  Sim,
  seededRandom,
  splitRange,
} from "../../internal/gossip/index.ts";
import { rowHash } from "../../internal/gossip/hash.ts";
import { CONTROLLER_OWNER, type ReplicatedRow } from "../../internal/gossip/index.ts";

function randomRows(r: Random, n: number): ReplicatedRow[] {
  const owners = ["a", "b", "c", CONTROLLER_OWNER];
  return Array.from({ length: n }, () => {
    const owner = owners[Math.floor(r.next() * owners.length)]!;
    const deleted = r.next() < 0.1;
    return {
      table: r.next() < 0.5 ? "nodes" : "clusters",
      key: `k${Math.floor(r.next() * 40)}`,
      owner,
      version: Math.floor(r.next() * 50),
      deleted,
      data: deleted ? null : { x: r.next() },
    };
  });
}

function shuffle<T>(r: Random, xs: T[]): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r.next() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe("LWW merge and digests", () => {
  test("property: any delivery order, duplicates and batching give the same digests", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = seededRandom(seed);
      // unique (version, owner) per key so the LWW winner is unambiguous, as with a real HLC
      const rows = randomRows(r, 200).map((x, i) => ({ ...x, version: x.version * 1000 + i }));
      const ref = new MemoryReplica();
      ref.merge(rows);
      const want = JSON.stringify(ref.digest());
      for (let k = 0; k < 5; k++) {
        const rep = new MemoryReplica();
        const stream = shuffle(r, [...rows, ...rows.filter(() => r.next() < 0.3)]);
        let i = 0;
        while (i < stream.length) {
          const n = 1 + Math.floor(r.next() * 20);
          rep.merge(stream.slice(i, i + n));
          i += n;
        }
        expect(JSON.stringify(rep.digest())).toBe(want);
        expect(rep.size).toBe(ref.size);
      }
    }
  });

  test("digest hash is the XOR of row hashes, and merge returns only rows that changed state", () => {
    const rep = new MemoryReplica();
    const a: ReplicatedRow = { table: "nodes", key: "x", owner: "a", version: 5, deleted: false, data: {} };
    expect(rep.merge([a]).length).toBe(1);
    expect(rep.merge([a]).length).toBe(0);
    expect(rep.merge([{ ...a, version: 4 }]).length).toBe(0);
    expect(rep.digest()).toEqual([{ owner: "a", maxVersion: 5, count: 1, hash: rowHash(a) }]);
    const b = { ...a, version: 6, deleted: true, data: null };
    expect(rep.merge([b]).length).toBe(1);
    expect(rep.digest()[0]!.hash).toBe(rowHash(b));
  });

  test("allow() refuses rows an owner may not write", () => {
    const rep = new MemoryReplica({
      allow: (row) => row.table !== "clusters" || row.owner === CONTROLLER_OWNER,
    });
    const changed = rep.merge([
      { table: "clusters", key: "c1", owner: "n1", version: 1, deleted: false, data: {} },
      { table: "clusters", key: "c1", owner: CONTROLLER_OWNER, version: 1, deleted: false, data: {} },
    ]);
    expect(changed.map((c) => c.owner)).toEqual([CONTROLLER_OWNER]);
  });

  test("splitRange covers (lo, hi] exactly", () => {
    const parts = splitRange(-1, 1000, 16);
    expect(parts.length).toBe(16);
    expect(parts[0]![0]).toBe(-1);
    expect(parts.at(-1)![1]).toBe(1000);
    for (let i = 1; i < parts.length; i++) expect(parts[i]![0]).toBe(parts[i - 1]![1]);
    expect(splitRange(5, 7, 16)).toEqual([
      [5, 6],
      [6, 7],
    ]);
  });

  test("a gap inside a big owner is repaired by range reconciliation without resending the owner", () => {
    const sim = new Sim({ seed: 21 });
    const seed = Array.from({ length: 20_000 }, (_, i) => ({
      table: "nodes",
      key: `seed-${i}`,
      owner: CONTROLLER_OWNER,
      version: 10_000 + i * 7,
      deleted: false,
      data: { i },
    }));
    const holey = seed.filter((_, i) => i !== 1234 && i !== 15_000);
    const ra = new MemoryReplica();
    ra.merge(seed);
    const rb = new MemoryReplica();
    rb.merge(holey);
    sim.addNode("a", { members: ["a", "b"] }, ra);
    sim.addNode("b", { members: ["a", "b"] }, rb);
    expect(rb.digest()[0]!.maxVersion).toBe(ra.digest()[0]!.maxVersion);
    expect(sim.runUntil(() => converged(sim), 20_000)).toBe(true);
    expect(rb.size).toBe(20_000);
    const fullSize = JSON.stringify(seed).length;
    // far less than one full copy of the owner crossed the wire
    expect(sim.totalBytes()).toBeLessThan(fullSize / 10);
    expect(sim.node("a").stats.rangeRequests + sim.node("b").stats.rangeRequests).toBeGreaterThan(0);
  });
});

test("in-memory digests equal the store's computeDigests over the same rows", async () => {
  const { computeDigests } = await import("../../internal/gossip/index.ts");
  const r = seededRandom(77);
  const rows = randomRows(r, 300).map((x, i) => ({ ...x, version: x.version * 1000 + i }));
  const rep = new MemoryReplica();
  rep.merge(rows);
  expect(rep.digest()).toEqual(computeDigests(rep.all()));
});
