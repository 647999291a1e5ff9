import { createHash } from "node:crypto";
import { describe, expect, test } from "bun:test";
import {
  type HostState,
  KOSMOS_ROUTE_TABLE,
  KOSMOS_RULE_PRIORITY,
  PlanError,
  electGateways,
  electServiceNodes,
  plan,
  vtepMac,
} from "../../internal/planner/index.ts";
import {
  type ClusterInput,
  type MemberState,
  type NodeInput,
  type PlanInput,
  type Topology,
  type TopologyInput,
  validateTopology,
} from "../../internal/topology/index.ts";
import { clone, labTopology, shuffled } from "./topology-fixtures.ts";

type Mut = TopologyInput & { clusters: ClusterInput[]; nodes: NodeInput[] };
function topo(f?: (t: Mut) => void): Topology {
  const t = clone(labTopology()) as Mut;
  f?.(t);
  return validateTopology(t);
}
const lab = topo();
const P = (self: string, extra: Partial<PlanInput> = {}, t: Topology = lab): HostState =>
  plan({ topology: t, self, ...extra });
const routeLines = (h: HostState) => h.routes.map((r) => `${r.dst} via ${r.via} dev ${r.dev}`);
const neighLines = (h: HostState) => h.neighbors.map((n) => `${n.dev} ${n.ip}`);

/** A second gateway cluster c4 (IPv4) with two candidates. */
const withC4 = (t: Mut) => {
  t.clusters.push({
    name: "c4",
    networkType: "gateway",
    podCIDRs: ["10.246.0.0/16"],
    serviceCIDRs: ["10.99.0.0/16"],
  });
  t.nodes.push(
    {
      name: "c4-n1",
      cluster: "c4",
      ipv4: "192.168.4.1",
      podCIDRs: ["10.246.1.0/24"],
      gatewayCandidate: true,
    },
    { name: "c4-n2", cluster: "c4", ipv4: "192.168.4.2", podCIDRs: ["10.246.2.0/24"] },
  );
};

describe("vtepMac", () => {
  test("stable, locally administered unicast, differs per node and device", () => {
    const m = vtepMac("c1-n1", "vx-bridge");
    expect(m).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const b0 = Number.parseInt(m.slice(0, 2), 16);
    expect(b0 & 1).toBe(0);
    expect(b0 & 2).toBe(2);
    expect(vtepMac("c1-n1", "vx-bridge")).toBe(m);
    expect(vtepMac("c1-n2", "vx-bridge")).not.toBe(m);
    expect(vtepMac("c1-n1", "vx-local")).not.toBe(m);
    // same bytes as node:crypto's SHA-256 (Bun's fast path must not change MACs)
    const d = createHash("sha256").update("c1-n1/vx-bridge").digest();
    const want = [((d[0] as number) & 0xfe) | 2, ...d.subarray(1, 6)].map((x) =>
      x.toString(16).padStart(2, "0"),
    );
    expect(m).toBe(want.join(":"));
  });
});

describe("P2P <-> P2P", () => {
  const h = P("c1-n1");
  test("devices: vx-bridge + vx-bridge-6 with overlay addresses, MTU, VNI, port", () => {
    expect(h.devices.map((d) => [d.name, d.vni, d.port, d.local, d.address, d.mtu])).toEqual([
      ["vx-bridge", 54, 4876, "192.168.1.1", "220.168.1.1/8", 1450],
      ["vx-bridge-6", 64, 4866, "fd00:1ab:1::1", "9480:1ab:1::1/16", 1430],
    ]);
    expect(h.devices[0]?.mac).toBe(vtepMac("c1-n1", "vx-bridge"));
    expect(h.rules).toEqual([
      { family: 4, priority: KOSMOS_RULE_PRIORITY, table: KOSMOS_ROUTE_TABLE },
      { family: 6, priority: KOSMOS_RULE_PRIORITY, table: KOSMOS_ROUTE_TABLE },
    ]);
  });
  test("per-node pod routes of the other P2P cluster through its global CIDR", () => {
    const lines = routeLines(h);
    expect(lines).toContain("242.3.1.0/24 via 220.168.3.1 dev vx-bridge");
    expect(lines).toContain("242.3.2.0/24 via 220.168.3.2 dev vx-bridge");
    // service CIDR of P2P c3 via its service node (lowest name)
    expect(lines).toContain("10.98.0.0/16 via 220.168.3.1 dev vx-bridge");
    expect(h.serviceNodes?.c3).toBe("c3-n1");
    // never a route to its own cluster or to c3's real (overlapping) pod CIDR
    expect(lines.some((l) => l.startsWith("10.244."))).toBe(false);
    expect(lines.some((l) => l.includes("220.168.1.2"))).toBe(false);
    for (const r of h.routes) expect(r.table).toBe(KOSMOS_ROUTE_TABLE);
  });
  test("static FDB (all-zero + MAC) and permanent neighbours per remote VTEP", () => {
    const c3n1 = h.fdb.filter((f) => f.dst === "192.168.3.1");
    expect(c3n1).toEqual([
      { dev: "vx-bridge", mac: "00:00:00:00:00:00", dst: "192.168.3.1" },
      { dev: "vx-bridge", mac: vtepMac("c3-n1", "vx-bridge"), dst: "192.168.3.1" },
    ]);
    expect(h.neighbors.find((n) => n.ip === "220.168.3.1")).toEqual({
      dev: "vx-bridge",
      ip: "220.168.3.1",
      mac: vtepMac("c3-n1", "vx-bridge"),
      family: 4,
    });
    // c3 is IPv4-only: no v6 entries for it; c1-n2 (same cluster) is no peer
    expect(h.fdb.some((f) => f.dst === "192.168.1.2")).toBe(false);
    expect(neighLines(h)).toEqual([
      "vx-bridge 220.168.2.1",
      "vx-bridge 220.168.3.1",
      "vx-bridge 220.168.3.2",
      "vx-bridge-6 9480:1ab:2::1",
    ]);
  });
  test("NAT: global prefix map, no masquerade, no-masquerade for every routed destination", () => {
    expect(h.nft.globalMaps).toEqual([{ local: "10.244.0.0/16", global: "242.1.0.0/16", family: 4 }]);
    expect(h.nft.masquerade).toEqual([]);
    expect(h.nft.noMasqueradeDst.v4).toEqual(h.routes.filter((r) => r.family === 4).map((r) => r.dst));
    // IPv4 in numeric order
    expect(h.nft.noMasqueradeDst.v4).toEqual([
      "10.97.0.0/16",
      "10.98.0.0/16",
      "10.245.0.0/16",
      "242.3.1.0/24",
      "242.3.2.0/24",
    ]);
    expect(h.nft.noMasqueradeDst.v6).toEqual(["fd10:2::/48", "fd96:2::/112"]);
    expect(h.nft.mssClampDevices).toEqual(["vx-bridge", "vx-bridge-6"]);
  });
  test("sysctls", () => {
    expect(h.sysctls).toEqual([
      { key: "net.ipv4.conf.vx-bridge.rp_filter", value: "0" },
      { key: "net.ipv4.ip_forward", value: "1" },
      { key: "net.ipv6.conf.all.forwarding", value: "1" },
    ]);
  });
  test("MTU from underlayMTU and cluster override", () => {
    const t = topo((t) => {
      (t.nodes[0] as NodeInput).underlayMTU = 9000;
      (t.clusters[2] as ClusterInput).mtu = 1400;
      (t.nodes[0] as NodeInput).interfaceName = "eth1";
    });
    const a = P("c1-n1", {}, t);
    expect(a.devices.map((d) => d.mtu)).toEqual([8950, 8930]);
    expect(a.devices[0]?.parent).toBe("eth1");
    expect(P("c3-n1", {}, t).devices.map((d) => d.mtu)).toEqual([1400]);
  });
});

describe("P2P <-> gateway", () => {
  test("P2P node routes the gateway cluster's whole CIDRs via the active gateway", () => {
    const lines = routeLines(P("c3-n1"));
    expect(lines).toContain("10.245.0.0/16 via 220.168.2.1 dev vx-bridge");
    expect(lines).toContain("10.97.0.0/16 via 220.168.2.1 dev vx-bridge");
    // only the gateway of c2 is a peer
    expect(neighLines(P("c3-n1")).filter((l) => l.includes("220.168.2."))).toEqual(["vx-bridge 220.168.2.1"]);
  });
  test("the gateway: vx-bridge + vx-local, bridge peers of other clusters, all own nodes on vx-local", () => {
    const h = P("c2-n1");
    expect(h.gateways).toEqual({ c2: "c2-n1" });
    expect(h.devices.map((d) => `${d.name} ${d.address}`)).toEqual([
      "vx-bridge 220.168.2.1/8",
      "vx-bridge-6 9480:1ab:2::1/16",
      "vx-local 210.168.2.1/8",
      "vx-local-6 9470:1ab:2::1/16",
    ]);
    expect(neighLines(h).filter((l) => l.startsWith("vx-local "))).toEqual([
      "vx-local 210.168.2.2",
      "vx-local 210.168.2.3",
    ]);
    const lines = routeLines(h);
    expect(lines).toContain("242.1.1.0/24 via 220.168.1.1 dev vx-bridge");
    expect(lines).toContain("fd10:1:0:2::/64 via 9480:1ab:1::2 dev vx-bridge-6");
    expect(lines).toContain("10.96.0.0/16 via 220.168.1.1 dev vx-bridge");
    expect(lines).toContain("242.3.2.0/24 via 220.168.3.2 dev vx-bridge");
    // masquerade: local CIDR out vx-bridge; bridge CIDR out anything but the overlays
    expect(h.nft.masquerade).toEqual([
      { srcCIDRs: ["220.0.0.0/8"], oif: "*", family: 4, exceptOif: ["vx-bridge", "vx-local"] },
      { srcCIDRs: ["210.0.0.0/8"], oif: "vx-bridge", family: 4 },
      { srcCIDRs: ["9480::/16"], oif: "*", family: 6, exceptOif: ["vx-bridge-6", "vx-local-6"] },
      { srcCIDRs: ["9470::/16"], oif: "vx-bridge-6", family: 6 },
    ]);
  });
  test("a non-gateway node: only vx-local, its gateway as sole peer, every remote CIDR via the gateway", () => {
    const h = P("c2-n3");
    expect(h.devices.map((d) => d.name)).toEqual(["vx-local", "vx-local-6"]);
    expect(neighLines(h)).toEqual(["vx-local 210.168.2.1", "vx-local-6 9470:1ab:2::1"]);
    expect(h.fdb.map((f) => f.dst)).toEqual(["192.168.2.1", "192.168.2.1", "fd00:1ab:2::1", "fd00:1ab:2::1"]);
    for (const r of h.routes) {
      expect(r.via).toBe(r.family === 4 ? "210.168.2.1" : "9470:1ab:2::1");
      expect(r.dev).toBe(r.family === 4 ? "vx-local" : "vx-local-6");
    }
    expect(h.routes.map((r) => r.dst)).toEqual(P("c2-n1").routes.map((r) => r.dst));
    expect(h.nft.masquerade).toEqual([]);
    expect(h.nft.globalMaps).toEqual([]);
    expect(h.nft.noMasqueradeDst.v4).toContain("242.1.1.0/24");
  });
  test("a standby candidate is a non-gateway node", () => {
    const h = P("c2-n2");
    expect(h.devices.map((d) => d.name)).toEqual(["vx-local", "vx-local-6"]);
  });
});

describe("gateway <-> gateway", () => {
  const t = topo(withC4);
  test("gateway routes the other gateway cluster via its gateway on vx-bridge", () => {
    const lines = routeLines(P("c2-n1", {}, t));
    expect(lines).toContain("10.246.0.0/16 via 220.168.4.1 dev vx-bridge");
    expect(lines).toContain("10.99.0.0/16 via 220.168.4.1 dev vx-bridge");
    expect(lines.some((l) => l.includes("220.168.4.2"))).toBe(false);
  });
  test("non-gateway node goes through its own gateway on vx-local", () => {
    expect(routeLines(P("c4-n2", {}, t))).toContain("10.245.0.0/16 via 210.168.4.1 dev vx-local");
    expect(routeLines(P("c4-n2", {}, t)).some((l) => l.startsWith("fd"))).toBe(false);
  });
  test("IPv4-only gateway c4 peers with dual c2 only over IPv4", () => {
    const h = P("c4-n1", {}, t);
    expect(h.devices.map((d) => d.name)).toEqual(["vx-bridge", "vx-local"]);
    expect(h.neighbors.every((n) => n.family === 4)).toBe(true);
  });
});

describe("overlapping pod CIDRs", () => {
  test("without a global map on the other side, the overlapping CIDRs are skipped with a warning", () => {
    const t = topo((t) => {
      (t.clusters[2] as ClusterInput).globalCIDRs = {};
    });
    const h = P("c1-n1", {}, t);
    expect(routeLines(h).some((l) => l.startsWith("10.244."))).toBe(false);
    expect(h.warnings.join("\n")).toContain("cluster c3: skipped 2 CIDR(s) overlapping local cluster c1");
    expect(h.warnings.join("\n")).toContain("10.244.1.0/24");
    // ... and c3 reaches c1 through c1's global CIDR
    expect(routeLines(P("c3-n1", {}, t))).toContain("242.1.2.0/24 via 220.168.1.2 dev vx-bridge");
  });
});

describe("single-family clusters", () => {
  const v6 = validateTopology({
    clusters: [
      { name: "a", ipFamily: "ipv6", podCIDRs: ["fd10:a::/48"], serviceCIDRs: ["fd96:a::/112"] },
      {
        name: "b",
        ipFamily: "ipv6",
        networkType: "gateway",
        podCIDRs: ["fd10:b::/48"],
        serviceCIDRs: ["fd96:b::/112"],
      },
    ],
    nodes: [
      { name: "a1", cluster: "a", ipv6: "fd00:a::1", podCIDRs: ["fd10:a:0:1::/64"] },
      { name: "b1", cluster: "b", ipv6: "fd00:b::1", podCIDRs: ["fd10:b:0:1::/64"], gatewayCandidate: true },
      { name: "b2", cluster: "b", ipv6: "fd00:b::2", podCIDRs: ["fd10:b:0:2::/64"] },
    ],
  });
  test("IPv6-only: -6 devices, v6 forwarding, no IPv4 anything", () => {
    const h = P("a1", {}, v6);
    expect(h.devices.map((d) => `${d.name} ${d.address} ${d.mtu}`)).toEqual([
      "vx-bridge-6 9480:a::1/16 1430",
    ]);
    expect(routeLines(h)).toEqual([
      "fd10:b::/48 via 9480:b::1 dev vx-bridge-6",
      "fd96:b::/112 via 9480:b::1 dev vx-bridge-6",
    ]);
    expect(h.rules.map((r) => r.family)).toEqual([6]);
    expect(h.sysctls).toEqual([{ key: "net.ipv6.conf.all.forwarding", value: "1" }]);
    expect(routeLines(P("b2", {}, v6))).toEqual([
      "fd10:a:0:1::/64 via 9470:b::1 dev vx-local-6",
      "fd96:a::/112 via 9470:b::1 dev vx-local-6",
    ]);
    expect(P("b1", {}, v6).nft.masquerade.map((m) => m.family)).toEqual([6, 6]);
  });
  test("dual-stack node and IPv4-only peer: only the common family", () => {
    const h = P("c3-n1");
    expect(h.devices.map((d) => d.name)).toEqual(["vx-bridge"]);
    expect(h.routes.every((r) => r.family === 4)).toBe(true);
    expect(h.fdb.every((f) => !f.dst.includes(":"))).toBe(true);
  });
});

describe("liveness and gateway failover", () => {
  test("lowest-named alive candidate, sticky while alive (suspect counts as alive)", () => {
    expect(electGateways(lab)).toEqual({ c2: "c2-n1" });
    expect(electGateways(lab, {}, { c2: "c2-n2" })).toEqual({ c2: "c2-n2" });
    expect(electGateways(lab, { "c2-n2": "suspect" }, { c2: "c2-n2" })).toEqual({ c2: "c2-n2" });
    expect(electGateways(lab, { "c2-n2": "dead" }, { c2: "c2-n2" })).toEqual({ c2: "c2-n1" });
    // a previous gateway that is not a candidate is not kept
    expect(electGateways(lab, {}, { c2: "c2-n3" })).toEqual({ c2: "c2-n1" });
    expect(electGateways(lab, { "c2-n1": "dead", "c2-n2": "left" })).toEqual({});
  });
  test("the gateway moves on death and every plan follows", () => {
    const members: Record<string, MemberState> = { "c2-n1": "dead" };
    const gw = P("c2-n2", { members, gateways: { c2: "c2-n1" } });
    expect(gw.gateways).toEqual({ c2: "c2-n2" });
    expect(gw.devices.map((d) => d.name)).toContain("vx-bridge");
    // the dead node is gone from the new gateway's peers
    expect(neighLines(gw).filter((l) => l.startsWith("vx-local "))).toEqual(["vx-local 210.168.2.3"]);
    expect(routeLines(P("c2-n3", { members }))).toContain("242.1.1.0/24 via 210.168.2.2 dev vx-local");
    expect(routeLines(P("c1-n1", { members }))).toContain("10.245.0.0/16 via 220.168.2.2 dev vx-bridge");
    expect(neighLines(P("c1-n1", { members }))).not.toContain("vx-bridge 220.168.2.1");
  });
  test("no alive gateway: remote clusters warn, own nodes have no routes", () => {
    const members: Record<string, MemberState> = { "c2-n1": "dead", "c2-n2": "dead" };
    expect(P("c1-n1", { members }).warnings).toContain("cluster c2 has no alive gateway: unreachable");
    const h = P("c2-n3", { members });
    expect(h.routes).toEqual([]);
    expect(h.warnings).toContain("cluster c2 has no alive gateway: no remote routes");
  });
  test("dead P2P nodes are removed: no FDB, neighbour or route; service node moves", () => {
    const members: Record<string, MemberState> = { "c3-n1": "dead" };
    const h = P("c1-n1", { members, serviceNodes: { c3: "c3-n1" } });
    expect(h.fdb.some((f) => f.dst === "192.168.3.1")).toBe(false);
    expect(routeLines(h).some((l) => l.startsWith("242.3.1."))).toBe(false);
    expect(routeLines(h)).toContain("10.98.0.0/16 via 220.168.3.2 dev vx-bridge");
    expect(h.serviceNodes?.c3).toBe("c3-n2");
  });
  test("service node: candidates preferred, sticky", () => {
    const t = topo((t) => {
      (t.nodes[6] as NodeInput).gatewayCandidate = true;
    });
    expect(electServiceNodes(t).c3).toBe("c3-n2");
    expect(electServiceNodes(t, {}, { c3: "c3-n1" }).c3).toBe("c3-n2");
    expect(electServiceNodes(lab, {}, { c3: "c3-n2" }).c3).toBe("c3-n2");
    expect(electServiceNodes(t, { "c3-n2": "dead" }).c3).toBe("c3-n1");
  });
});

describe("IPsec between elastic IPs", () => {
  const t = topo((t) => {
    (t.nodes[0] as NodeInput).elasticIP = "203.0.113.11";
    (t.nodes[5] as NodeInput).elasticIP = "203.0.113.31";
    (t.nodes[2] as NodeInput).elasticIP = "203.0.113.21";
  });
  const secret = new TextEncoder().encode("installation-secret");
  test("policies per pod-CIDR pair, templates on the elastic IPs", () => {
    const h = P("c1-n1", { ipsecSecret: secret }, t);
    const toC3 = h.xfrm.policies.filter((p) => p.tmplDst === "203.0.113.31" || p.tmplSrc === "203.0.113.31");
    expect(toC3.map((p) => `${p.dir} ${p.src} ${p.dst} ${p.tmplSrc}->${p.tmplDst}`).sort()).toEqual([
      "fwd 242.3.1.0/24 242.1.1.0/24 203.0.113.31->203.0.113.11",
      "in 242.3.1.0/24 242.1.1.0/24 203.0.113.31->203.0.113.11",
      "out 242.1.1.0/24 242.3.1.0/24 203.0.113.11->203.0.113.31",
    ]);
    // c2's gateway has an EIP: its whole cluster pod CIDR (v4 pair only, self's v6 /64 pairs with fd10:2::/48)
    const toC2 = h.xfrm.policies.filter((p) => p.dir === "out" && p.tmplDst === "203.0.113.21");
    expect(toC2.map((p) => `${p.src} ${p.dst}`)).toEqual([
      "242.1.1.0/24 10.245.0.0/16",
      "fd10:1:0:1::/64 fd10:2::/48",
    ]);
    // c3-n2 has no EIP: nothing
    expect(h.xfrm.policies.some((p) => p.dst === "242.3.2.0/24")).toBe(false);
    expect(new Set(toC3.map((p) => p.reqid)).size).toBe(1);
  });
  test("both ends derive identical SPI and key per direction; reqids agree", () => {
    const a = P("c1-n1", { ipsecSecret: secret, ipsecEpoch: 3 }, t);
    const b = P("c3-n1", { ipsecSecret: secret, ipsecEpoch: 3 }, t);
    const aOut = a.xfrm.states.find((s) => s.src === "203.0.113.11" && s.dst === "203.0.113.31");
    const bIn = b.xfrm.states.find((s) => s.src === "203.0.113.11" && s.dst === "203.0.113.31");
    const aIn = a.xfrm.states.find((s) => s.src === "203.0.113.31" && s.dst === "203.0.113.11");
    const bOut = b.xfrm.states.find((s) => s.src === "203.0.113.31" && s.dst === "203.0.113.11");
    expect(aOut).toBeDefined();
    expect(aOut).toEqual(bIn as NonNullable<typeof bIn>);
    expect(aIn).toEqual(bOut as NonNullable<typeof bOut>);
    expect(aOut?.aeadKeyHex).toMatch(/^0x[0-9a-f]{40}$/);
    expect(aOut?.aeadKeyHex).not.toBe(aIn?.aeadKeyHex);
    expect(aOut?.spi).not.toBe(aIn?.spi);
    expect(aOut?.spi).toBeGreaterThanOrEqual(256);
    // a new epoch or another secret gives other keys
    const c = P("c1-n1", { ipsecSecret: secret, ipsecEpoch: 4 }, t);
    expect(c.xfrm.states.find((s) => s.dst === "203.0.113.31")?.aeadKeyHex).not.toBe(aOut?.aeadKeyHex);
    const d = P("c1-n1", { ipsecSecret: new Uint8Array([1, 2, 3]), ipsecEpoch: 3 }, t);
    expect(d.xfrm.states.find((s) => s.dst === "203.0.113.31")?.aeadKeyHex).not.toBe(aOut?.aeadKeyHex);
  });
  test("without a secret: policies, no states, a warning", () => {
    const h = P("c1-n1", {}, t);
    expect(h.xfrm.policies.length).toBeGreaterThan(0);
    expect(h.xfrm.states).toEqual([]);
    expect(h.warnings).toContain("no ipsecSecret: IPsec policies planned without states (keys)");
  });
  test("no elastic IP on self: no IPsec", () => {
    expect(P("c1-n2", { ipsecSecret: secret }, t).xfrm).toEqual({ policies: [], states: [] });
  });
});

describe("determinism and errors", () => {
  test("shuffled input order gives a deep-equal plan", () => {
    const base = clone(labTopology()) as Mut;
    withC4(base);
    for (let seed = 1; seed <= 5; seed++) {
      const s = clone(base);
      s.clusters = shuffled(s.clusters, seed);
      s.nodes = shuffled(s.nodes, seed * 7);
      for (const self of ["c1-n1", "c2-n1", "c2-n3", "c3-n2", "c4-n2"]) {
        expect(plan({ topology: validateTopology(s), self })).toEqual(
          plan({ topology: validateTopology(base), self }),
        );
      }
    }
  });
  test("same input twice gives identical JSON", () => {
    expect(JSON.stringify(P("c2-n1"))).toBe(JSON.stringify(P("c2-n1")));
  });
  test("unknown self is a typed error", () => {
    try {
      P("nope");
      throw new Error("expected PlanError");
    } catch (e) {
      expect(e).toBeInstanceOf(PlanError);
      expect((e as PlanError).code).toBe("PLAN_SELF_UNKNOWN");
      expect((e as PlanError).hint.length).toBeGreaterThan(0);
    }
  });
});
