import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { computeDigests, rowHash, xorHash } from "../../internal/gossip/index.ts";
import {
  CONTROLLER_OWNER,
  HybridClock,
  openStore,
  packHlc,
  type ReplicatedRow,
  type Store,
  StoreError,
} from "../../internal/store/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

let dir: string;
const stores: Store[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kosmos-replica-"));
});
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(name: string, node = name, clock?: HybridClock): Promise<Store> {
  const s = await openStore(join(dir, `${name}.db`), clock ? { node, clock } : { node });
  stores.push(s);
  return s;
}

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const BASE = packHlc(Date.now() - 10_000, 0);

function cluster(name: string, pod: string): Record<string, unknown> {
  return { name, networkType: "p2p", ipFamily: "ipv4", podCIDRs: [pod] };
}
function node(name: string, clusterName: string, ip: string): Record<string, unknown> {
  return { name, cluster: clusterName, ipv4: ip, podCIDRs: [], gatewayCandidate: false };
}
function row(
  p: Partial<ReplicatedRow> & Pick<ReplicatedRow, "table" | "key" | "owner" | "version">,
): ReplicatedRow {
  return { deleted: false, data: null, ...p };
}

const topo: Topology = {
  clusters: [
    {
      name: "c1",
      networkType: "p2p",
      ipFamily: "ipv4",
      podCIDRs: ["10.1.0.0/16"],
      serviceCIDRs: ["10.96.0.0/12"],
      globalCIDRs: { "10.1.0.0/16": "100.1.0.0/16" },
      bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
      localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
      mtu: 1450,
    },
  ],
  nodes: [
    { name: "a1", cluster: "c1", ipv4: "192.168.1.1", podCIDRs: ["10.1.1.0/24"], gatewayCandidate: true },
    {
      name: "a2",
      cluster: "c1",
      ipv4: "192.168.1.2",
      ipv6: "fd00::2",
      podCIDRs: [],
      gatewayCandidate: false,
      elasticIP: "1.2.3.4",
      interfaceName: "eth0",
      underlayMTU: 9000,
    },
  ],
};

describe("seed and snapshot", () => {
  test("snapshot round-trips the seeded topology exactly", async () => {
    const s = await open("n1");
    const changed = s.seed(topo);
    expect(changed.map((r) => `${r.table}/${r.key}`)).toEqual(["clusters/c1", "nodes/a1", "nodes/a2"]);
    expect(s.snapshot()).toEqual(topo);
    expect(changed.every((r) => r.owner === CONTROLLER_OWNER && !r.deleted)).toBe(true);
  });

  test("re-seeding unchanged content changes nothing; removed rows are tombstoned", async () => {
    const s = await open("n1");
    s.seed(topo);
    expect(s.seed(topo)).toEqual([]);
    const before = s.get("nodes", "a1")!;
    const next: Topology = {
      clusters: topo.clusters,
      nodes: [{ ...topo.nodes[0]!, podCIDRs: ["10.1.9.0/24"] }],
    };
    const changed = s.seed(next);
    expect(changed.map((r) => [r.table, r.key, r.deleted])).toEqual([
      ["nodes", "a1", false],
      ["nodes", "a2", true],
    ]);
    expect(s.get("nodes", "a1")!.version).toBeGreaterThan(before.version);
    expect(s.get("nodes", "a2")).toMatchObject({ deleted: true, data: null, owner: CONTROLLER_OWNER });
    expect(s.snapshot().nodes.map((n) => n.name)).toEqual(["a1"]);
    // tombstones stay in the digest
    expect(s.digest()).toEqual(computeDigests(s.rows()));
    expect(s.digest()[0]?.count).toBe(3);
  });

  test("seed refuses clusters from a non-controller owner and names invalid fields", async () => {
    const s = await open("n1");
    expect(() => s.seed(topo, "a1")).toThrow(StoreError);
    try {
      s.seed({ clusters: [], nodes: [{ ...topo.nodes[0]!, name: "Bad_Name" }] });
      throw new Error("not reached");
    } catch (e) {
      expect((e as StoreError).code).toBe("STORE_INVALID_ROW");
      expect((e as StoreError).message).toContain("topology.nodes[0].name");
    }
  });
});

describe("writeLocal", () => {
  test("a node writes its own rows, not others', and not clusters", async () => {
    const s = await open("a1");
    const r = s.writeLocal("node_status", "a1", { endpoint: "https://192.168.1.1:10250", macs: {} })!;
    expect(r).toMatchObject({ table: "node_status", key: "a1", owner: "a1", deleted: false });
    expect(s.writeLocal("node_status", "a1", { endpoint: "https://192.168.1.1:10250", macs: {} })).toBeNull();
    expect(() => s.writeLocal("node_status", "a2", {})).toThrow(StoreError);
    const caught = (fn: () => unknown): StoreError => {
      try {
        fn();
      } catch (e) {
        return e as StoreError;
      }
      throw new Error("expected a StoreError");
    };
    const notOwner = caught(() => s.writeLocal("clusters", "c1", cluster("c1", "10.0.0.0/16")));
    expect(notOwner.code).toBe("STORE_NOT_OWNER");
    expect(notOwner.hint).toContain("controller");
    expect(caught(() => s.writeLocal("bogus" as "nodes", "a1", {})).code).toBe("STORE_UNKNOWN_TABLE");
    const invalid = caught(() => s.writeLocal("node_status", "a1", { macs: { "vx-local": "nope" } }));
    expect(invalid.code).toBe("STORE_INVALID_ROW");
    expect(invalid.message).toContain("data.macs.vx-local");
    // a node may take over its own nodes row from the controller
    s.seed(topo);
    const own = s.writeLocal("nodes", "a1", { ...topo.nodes[0]!, underlayMTU: 1500 })!;
    expect(own.owner).toBe("a1");
    expect(s.snapshot().nodes.find((n) => n.name === "a1")?.underlayMTU).toBe(1500);
    // delete
    const del = s.writeLocal("node_status", "a1", null)!;
    expect(del.deleted).toBe(true);
    expect(s.writeLocal("node_status", "a1", null)).toBeNull();
    expect(s.digest()).toEqual(computeDigests(s.rows()));
  });

  test("onChange fires after changing writes only, and unsubscribes", async () => {
    const s = await open("a1");
    const seen: string[][] = [];
    const off = s.onChange((rows) => seen.push(rows.map((r) => `${r.table}/${r.key}`)));
    s.seed(topo);
    s.seed(topo);
    s.writeLocal("node_status", "a1", {});
    s.merge([row({ table: "nodes", key: "zz", owner: "zz", version: 1, data: node("zz", "c1", "9.9.9.9") })]);
    s.merge([row({ table: "nodes", key: "zz", owner: "zz", version: 1, data: node("zz", "c1", "9.9.9.9") })]);
    off();
    s.writeLocal("node_status", "a1", { agentVersion: "2" });
    expect(seen).toEqual([["clusters/c1", "nodes/a1", "nodes/a2"], ["node_status/a1"], ["nodes/zz"]]);
  });
});

describe("merge", () => {
  test("LWW on (version, owner); stale and duplicate rows change nothing", async () => {
    const s = await open("x");
    const v = BASE + 100;
    expect(
      s.merge([
        row({
          table: "nodes",
          key: "a1",
          owner: CONTROLLER_OWNER,
          version: v,
          data: node("a1", "c1", "1.1.1.1"),
        }),
      ]),
    ).toHaveLength(1);
    // older version loses
    expect(
      s.merge([
        row({ table: "nodes", key: "a1", owner: "a1", version: v - 1, data: node("a1", "c1", "2.2.2.2") }),
      ]),
    ).toEqual([]);
    // same version: higher owner name wins ("controller" < "zz"... key must be node itself) -> "a1" < "controller", loses
    expect(
      s.merge([
        row({ table: "nodes", key: "a1", owner: "a1", version: v, data: node("a1", "c1", "2.2.2.2") }),
      ]),
    ).toEqual([]);
    // newer wins, even a tombstone
    const t = s.merge([row({ table: "nodes", key: "a1", owner: "a1", version: v + 1, deleted: true })]);
    expect(t).toEqual([
      { table: "nodes", key: "a1", owner: "a1", version: v + 1, deleted: true, data: null },
    ]);
    expect(s.snapshot().nodes).toEqual([]);
    // an older live row cannot resurrect it
    expect(
      s.merge([
        row({
          table: "nodes",
          key: "a1",
          owner: CONTROLLER_OWNER,
          version: v + 1 - 1,
          data: node("a1", "c1", "3.3.3.3"),
        }),
      ]),
    ).toEqual([]);
    expect(s.get("nodes", "a1")?.deleted).toBe(true);
    expect(s.digest()).toEqual(computeDigests(s.rows()));
  });

  test("ownership, unknown tables, invalid data and future versions are rejected and counted", async () => {
    const now = Date.now();
    const s = await open("x", "x", new HybridClock(() => now));
    const v = packHlc(now, 0);
    const changed = s.merge([
      row({ table: "clusters", key: "c1", owner: "a1", version: v, data: cluster("c1", "10.0.0.0/16") }),
      row({ table: "nodes", key: "a1", owner: "a2", version: v, data: node("a1", "c1", "1.1.1.1") }),
      row({ table: "node_status", key: "a1", owner: CONTROLLER_OWNER, version: v, data: { name: "a1" } }),
      row({ table: "secrets", key: "k", owner: CONTROLLER_OWNER, version: v, data: {} }),
      row({ table: "nodes", key: "a1", owner: "a1", version: v, data: node("a2", "c1", "1.1.1.1") }),
      row({ table: "nodes", key: "a1", owner: "a1", version: v, data: { name: "a1", cluster: "C_1" } }),
      row({ table: "nodes", key: "a1", owner: "a1", version: v, deleted: true, data: { name: "a1" } }),
      row({
        table: "nodes",
        key: "a1",
        owner: "a1",
        version: packHlc(now + 3_600_000, 0),
        data: node("a1", "c1", "1.1.1.1"),
      }),
      row({
        table: "clusters",
        key: "c1",
        owner: CONTROLLER_OWNER,
        version: v,
        data: cluster("c1", "10.0.0.0/16"),
      }),
    ]);
    expect(changed.map((r) => `${r.table}/${r.key}`)).toEqual(["clusters/c1"]);
    expect(s.stats.rejected).toEqual({ not_owner: 3, unknown_table: 1, invalid: 3, future: 1 });
    expect(s.stats.merged).toBe(1);
    expect(s.digest().map((d) => d.owner)).toEqual([CONTROLLER_OWNER]);
    // defaults were filled by the model schema
    expect(s.snapshot().clusters[0]?.bridgeCIDRs).toEqual({ ip: "220.0.0.0/8", ip6: "9480::/16" });
    // the clock observed the accepted version
    expect(s.clock.current()).toBeGreaterThanOrEqual(v);
  });

  test("rowsOf(owner, since) returns that owner's rows newer than since, ascending", async () => {
    const s = await open("x");
    s.merge([
      row({ table: "node_status", key: "a1", owner: "a1", version: BASE + 5, data: { name: "a1" } }),
      row({ table: "nodes", key: "a1", owner: "a1", version: BASE + 3, data: node("a1", "c1", "1.1.1.1") }),
      row({ table: "nodes", key: "a2", owner: "a2", version: BASE + 4, data: node("a2", "c1", "1.1.1.2") }),
      row({ table: "clusters", key: "c9", owner: CONTROLLER_OWNER, version: BASE + 1, deleted: true }),
    ]);
    expect(s.rowsOf("a1").map((r) => [r.table, r.version])).toEqual([
      ["nodes", BASE + 3],
      ["node_status", BASE + 5],
    ]);
    expect(s.rowsOf("a1", BASE + 3).map((r) => r.table)).toEqual(["node_status"]);
    expect(s.rowsOf(CONTROLLER_OWNER)).toEqual([
      { table: "clusters", key: "c9", owner: CONTROLLER_OWNER, version: BASE + 1, deleted: true, data: null },
    ]);
    expect(s.rowsOf("nobody")).toEqual([]);
    // rowsOf output merges cleanly into another replica: the rows are self-describing
    const t = await open("y");
    for (const d of s.digest()) t.merge(s.rowsOf(d.owner));
    expect(t.rows()).toEqual(s.rows());
    expect(t.digest()).toEqual(s.digest());
  });

  test("property: random rows in random orders with duplicates converge to identical replicas", async () => {
    for (const seed of [1, 2, 3]) {
      const rand = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
      const owners = [CONTROLLER_OWNER, "a1", "a2", "a3", "b1"];
      const nextVersion = new Map<string, number>();
      const all: ReplicatedRow[] = [];
      for (let i = 0; i < 400; i++) {
        const owner = pick(owners);
        // per-owner strictly increasing versions, deliberately colliding across owners
        const version = (nextVersion.get(owner) ?? BASE) + 1 + Math.floor(rand() * 3);
        nextVersion.set(owner, version);
        const table = pick(["clusters", "nodes", "node_status"] as const);
        const key =
          table === "clusters"
            ? pick(["c1", "c2"])
            : rand() < 0.8 && owner !== CONTROLLER_OWNER
              ? owner
              : pick(owners.slice(1));
        const deleted = rand() < 0.15;
        let data: Record<string, unknown> | null = null;
        if (!deleted) {
          if (table === "clusters") data = cluster(key, `10.${Math.floor(rand() * 250)}.0.0/16`);
          else if (table === "nodes")
            data = node(key, pick(["c1", "c2"]), `192.168.0.${Math.floor(rand() * 250)}`);
          else data = { name: key, agentVersion: `v${i}`, startedAt: i };
        }
        all.push({ table, key, owner, version, deleted, data });
      }
      const replicas: Store[] = [];
      for (let r = 0; r < 4; r++) {
        const s = await open(`p${seed}-${r}`);
        // shuffled delivery with ~30% duplicates, in random batch sizes
        const delivery = [...all, ...all.filter(() => rand() < 0.3)];
        for (let i = delivery.length - 1; i > 0; i--) {
          const j = Math.floor(rand() * (i + 1));
          [delivery[i], delivery[j]] = [delivery[j]!, delivery[i]!];
        }
        for (let i = 0; i < delivery.length; ) {
          const n = 1 + Math.floor(rand() * 50);
          s.merge(delivery.slice(i, i + n));
          i += n;
        }
        replicas.push(s);
      }
      const ref = replicas[0]!;
      expect(ref.rows().length).toBeGreaterThan(5);
      expect(ref.stats.rejected.not_owner).toBeGreaterThan(0);
      for (const s of replicas.slice(1)) {
        expect(s.rows()).toEqual(ref.rows());
        expect(s.digest()).toEqual(ref.digest());
        expect(s.snapshot()).toEqual(ref.snapshot());
      }
      for (const s of replicas) expect(s.digest()).toEqual(computeDigests(s.rows()));
    }
  });

  test("incremental digests equal digests recomputed from scratch, also after reopen", async () => {
    const s = await open("d", "a1");
    s.seed(topo);
    s.writeLocal("nodes", "a1", { ...topo.nodes[0]!, underlayMTU: 1500 }); // row moves controller -> a1
    s.writeLocal("node_status", "a1", { agentVersion: "1" });
    s.merge([row({ table: "nodes", key: "a2", owner: "a2", version: s.clock.current() + 1, deleted: true })]);
    s.seed({ clusters: [], nodes: [] });
    const expected = computeDigests(s.rows());
    expect(s.digest()).toEqual(expected);
    // controller's max version was recomputed when its newest row moved away
    for (const d of expected) {
      expect(d.maxVersion).toBe(
        Math.max(
          ...s
            .rows()
            .filter((r) => r.owner === d.owner)
            .map((r) => r.version),
        ),
      );
    }
    s.close();
    stores.splice(stores.indexOf(s), 1);
    const again = await open("d", "a1");
    expect(again.digest()).toEqual(expected);
    // the reopened clock is ahead of everything stored
    expect(again.clock.tick()).toBeGreaterThan(Math.max(...expected.map((d) => d.maxVersion)));
  });

  test("digest hash is the XOR of sha256-prefix row hashes (portable spec)", () => {
    const h = rowHash({ table: "nodes", key: "a1", version: 42, deleted: false });
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(h).toBe(
      new Bun.CryptoHasher("sha256").update("nodes\0a1\u000042\0false").digest("hex").slice(0, 16),
    );
    expect(xorHash(h, h)).toBe("0000000000000000");
    expect(xorHash("ffffffff00000000", "0f0f0f0f0f0f0f0f")).toBe("f0f0f0f00f0f0f0f");
  });
});
