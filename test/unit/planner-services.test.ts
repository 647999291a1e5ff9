import { describe, expect, test } from "bun:test";
import { canonicalNftListing, renderServiceVips } from "../../internal/dataplane/nft-services.ts";
import type { ServiceVip } from "../../internal/dataplane/index.ts";
import { plan } from "../../internal/planner/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const cluster = (name: string, pod: string, globalCIDRs: Record<string, string> = {}) => ({
  name,
  networkType: "p2p" as const,
  ipFamily: "ipv4" as const,
  podCIDRs: [pod],
  serviceCIDRs: [],
  globalCIDRs,
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
});

const topo = (): Topology => ({
  clusters: [
    cluster("c1", "10.244.0.0/16", { "10.244.0.0/16": "242.1.0.0/16" }),
    cluster("c2", "10.245.0.0/16"),
  ],
  nodes: [
    {
      name: "c1-n1",
      cluster: "c1",
      ipv4: "192.168.1.1",
      podCIDRs: ["10.244.1.0/24"],
      gatewayCandidate: false,
    },
    {
      name: "c2-n1",
      cluster: "c2",
      ipv4: "192.168.2.1",
      podCIDRs: ["10.245.1.0/24"],
      gatewayCandidate: false,
    },
  ],
  serviceImports: [
    {
      name: "demo/echo",
      namespace: "demo",
      service: "echo",
      type: "ClusterSetIP",
      ips: ["241.0.0.10"],
      ports: [
        { name: "http", port: 80, protocol: "TCP" },
        { name: "dns", port: 53, protocol: "UDP" },
      ],
      sessionAffinity: "None",
      clusters: ["c1", "c2"],
    },
    {
      name: "demo/headless",
      namespace: "demo",
      service: "headless",
      type: "Headless",
      ips: [],
      ports: [{ port: 80, protocol: "TCP" }],
      sessionAffinity: "None",
      clusters: ["c1"],
    },
  ],
  serviceEndpoints: [
    {
      name: "demo/echo/c1/a",
      namespace: "demo",
      service: "echo",
      cluster: "c1",
      slice: "a",
      addressType: "IPv4",
      ports: [
        { name: "http", port: 8080, protocol: "TCP" },
        { name: "dns", port: 5353, protocol: "UDP" },
      ],
      endpoints: [
        { addresses: ["10.244.1.5"], ready: true, node: "c1-n1" },
        { addresses: ["10.244.1.6"], ready: false, node: "c1-n1" },
      ],
    },
    {
      name: "demo/echo/c2/b",
      namespace: "demo",
      service: "echo",
      cluster: "c2",
      slice: "b",
      addressType: "IPv4",
      ports: [{ name: "http", port: 9090, protocol: "TCP" }],
      endpoints: [{ addresses: ["10.245.1.7"], ready: true, node: "c2-n1" }],
    },
  ],
});

describe("planServices (planner step)", () => {
  test("per port: ready endpoints, target port by name, another cluster's pod IP through its global CIDR", () => {
    const hs = plan({ topology: topo(), self: "c2-n1" });
    const http: ServiceVip = {
      name: "demo/echo:http",
      vip: "241.0.0.10",
      family: 4,
      protocol: "tcp",
      port: 80,
      endpoints: [
        { address: "10.245.1.7", port: 9090 },
        { address: "242.1.1.5", port: 8080 },
      ],
    };
    const dns: ServiceVip = {
      name: "demo/echo:dns",
      vip: "241.0.0.10",
      family: 4,
      protocol: "udp",
      port: 53,
      endpoints: [{ address: "242.1.1.5", port: 5353 }],
    };
    expect(hs.nft.serviceVips).toEqual([http, dns]);
  });

  test("in the source cluster the pod IPs stay; a dead node's endpoints leave", () => {
    const hs = plan({ topology: topo(), self: "c1-n1", electionMembers: { "c2-n1": "dead" } });
    const http = hs.nft.serviceVips!.find((v) => v.protocol === "tcp")!;
    expect(http.endpoints).toEqual([{ address: "10.244.1.5", port: 8080 }]);
  });

  test("no imports: no serviceVips key (HostState unchanged for clusters without MCS)", () => {
    const t = topo();
    delete t.serviceImports;
    delete t.serviceEndpoints;
    expect("serviceVips" in plan({ topology: t, self: "c1-n1" }).nft).toBe(false);
  });
});

describe("renderServiceVips", () => {
  test("deterministic; a VIP without endpoints is rejected, not DNATed; affinity adds a dynamic set per endpoint", () => {
    const vips = [
      {
        name: "a",
        vip: "241.0.0.1",
        family: 4 as const,
        protocol: "tcp" as const,
        port: 80,
        endpoints: [
          { address: "10.0.0.2", port: 8080 },
          { address: "10.0.0.1", port: 8080 },
        ],
        affinitySeconds: 60,
      },
      { name: "b", vip: "241.0.0.2", family: 4 as const, protocol: "tcp" as const, port: 80, endpoints: [] },
    ];
    const out = renderServiceVips(vips);
    expect(out).toBe(renderServiceVips([...vips].reverse()));
    expect(out).toContain("241.0.0.1 . tcp . 80 : goto mcs_svc_0");
    expect(out).not.toContain("241.0.0.2 . tcp . 80 : goto");
    expect(out).toContain("elements = { 241.0.0.2 . tcp . 80 }");
    expect(out).toContain("type filter hook prerouting priority filter - 20; policy accept;");
    expect(out).toContain("ip daddr . meta l4proto . th dport @mcs_noep4 reject");
    expect(out).not.toContain("@mcs_noep6");
    expect(out).toContain("numgen random mod 2");
    expect(out).toContain("set mcs_aff_0_1");
    expect(out.indexOf("10.0.0.1:8080")).toBeLessThan(out.indexOf("10.0.0.2:8080"));
    expect(renderServiceVips([])).toBe("");
  });

  test("canonicalNftListing drops the affinity sets' elements only", () => {
    const listing = `table inet kosmos {\n\tset mcs_aff_0_0 {\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 1m\n\t\telements = { 10.50.0.2 timeout 1m expires 59s }\n\t}\n\tset nomasq4 {\n\t\ttype ipv4_addr\n\t\telements = { 10.1.0.0/16 }\n\t}\n}\n`;
    const c = canonicalNftListing(listing);
    expect(c).not.toContain("10.50.0.2");
    expect(c).toContain("10.1.0.0/16");
    expect(c).toContain("set mcs_aff_0_0");
  });
});
