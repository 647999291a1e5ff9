import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, type Store } from "../../internal/store/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

let dir = "";
const stores: Store[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kosmos-store-svc-"));
});
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});
async function open(name: string): Promise<Store> {
  const s = await openStore(join(dir, `${name}.db`), { node: name });
  stores.push(s);
  return s;
}

const topo = (eps: string[]): Topology => ({
  clusters: [],
  nodes: [],
  serviceImports: [
    {
      name: "demo/echo",
      namespace: "demo",
      service: "echo",
      type: "ClusterSetIP",
      ips: ["241.0.0.10"],
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
      sessionAffinity: "None",
      clusters: ["c1"],
    },
  ],
  serviceEndpoints: [
    {
      name: "demo/echo/c1/echo-abc",
      namespace: "demo",
      service: "echo",
      cluster: "c1",
      slice: "echo-abc",
      addressType: "IPv4",
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      endpoints: eps.map((a) => ({ addresses: [a], ready: true, node: "c1-n1" })),
    },
  ],
});

describe("replicated service tables", () => {
  test("seeded service rows come back in the snapshot, and replace the controller's previous set", async () => {
    const s = await open("n1");
    expect(
      s
        .seed(topo(["10.1.0.5"]))
        .map((r) => r.table)
        .sort(),
    ).toEqual(["service_endpoints", "service_imports"]);
    expect(s.snapshot().serviceEndpoints![0]!.endpoints[0]!.addresses).toEqual(["10.1.0.5"]);
    expect(s.seed(topo(["10.1.0.5"]))).toEqual([]); // unchanged: nothing written
    const changed = s.seed({ ...topo([]), serviceImports: [], serviceEndpoints: [] });
    expect(changed.every((r) => r.deleted)).toBe(true);
    expect(s.snapshot().serviceImports).toBeUndefined();
  });

  test("a topology without the MCS lists leaves the service rows alone", async () => {
    const s = await open("n1");
    s.seed(topo(["10.1.0.5"]));
    s.seed({ clusters: [], nodes: [] });
    expect(s.snapshot().serviceImports).toHaveLength(1);
  });

  test("rows travel to another replica by merge (gossip); a node may not write them", async () => {
    const a = await open("n1");
    const b = await open("n2");
    b.merge(a.seed(topo(["10.1.0.5", "10.1.0.6"])));
    expect(b.snapshot().serviceEndpoints![0]!.endpoints).toHaveLength(2);
    const forged = {
      ...a.rowsOf("controller")[0]!,
      owner: "n1",
      version: a.rowsOf("controller")[0]!.version + 1,
    };
    expect(b.merge([forged])).toEqual([]);
    expect(b.stats.rejected.not_owner).toBe(1);
    expect(() => a.writeLocal("service_imports", "demo/echo", {})).toThrow(/may not write/);
  });

  test("bad rows are refused with the field named", async () => {
    const s = await open("n1");
    const t = topo(["not-an-ip-but-long-enough"]);
    t.serviceImports![0]!.ports[0]!.port = 70000;
    expect(() => s.seed(t)).toThrow(/port/);
  });
});
