/**
 * The lab's API servers on its network (internal/lab/apibridge.ts) and the demo's probe targets:
 * pure functions over the default lab's plan (c1 P2P dual stack, c2 gateway dual stack, c3 P2P IPv4
 * whose pod CIDR overlaps c1's and is reached through global IPs).
 */
import { describe, expect, test } from "bun:test";
import { demoTargets } from "../../internal/cli/lab-demo-k8s.ts";
import {
  apiAddress,
  apiUrl,
  bridgeArgv,
  DEFAULT_LAB,
  fabricAddressLines,
  kubernetesServiceEnv,
  kubernetesServiceIP,
  parseLabConfig,
  planLab,
  renderPodEgress,
} from "../../internal/lab/index.ts";

const plan = planLab("t", parseLabConfig(DEFAULT_LAB));
const [c1, c2, c3] = plan.clusters as [
  (typeof plan.clusters)[0],
  (typeof plan.clusters)[0],
  (typeof plan.clusters)[0],
];

describe("API servers on the lab's LANs", () => {
  test("each cluster's API address is on its own LAN, distinct from the router and every node", () => {
    expect(apiAddress(c1)).toBe("192.168.1.253");
    expect(apiAddress(c2)).toBe("192.168.2.253");
    expect(apiUrl(c3, 41000)).toBe("https://192.168.3.253:41000");
    const taken = new Set([...plan.clusters.map((c) => c.router4), ...plan.nodes.map((n) => n.ipv4)]);
    for (const c of plan.clusters) expect(taken.has(apiAddress(c))).toBe(false);
  });

  test("an IPv6-only cluster gets an IPv6 address, bracketed in URLs", () => {
    const v6 = { ...c1, ipFamily: "ipv6" as const };
    expect(apiAddress(v6)).toBe("fd00:1ab:1::fd");
    expect(apiUrl(v6, 6443)).toBe("https://[fd00:1ab:1::fd]:6443");
    expect(bridgeArgv(v6, { fabricNs: "f", port: 6443, socket: "/s" }).fabric).toContain(
      "TCP6-LISTEN:6443,bind=[fd00:1ab:1::fd],fork,reuseaddr",
    );
  });

  test("the bridge: a listener in the fabric namespace, a Unix socket, the API server on loopback", () => {
    const a = bridgeArgv(c1, { fabricNs: "kl-t-fabric", port: 41000, socket: "/run/x/apiserver.sock" });
    expect(a.fabric).toEqual([
      "ip",
      "netns",
      "exec",
      "kl-t-fabric",
      "socat",
      "TCP4-LISTEN:41000,bind=192.168.1.253,fork,reuseaddr",
      "UNIX-CONNECT:/run/x/apiserver.sock",
    ]);
    expect(a.host).toEqual([
      "socat",
      "UNIX-LISTEN:/run/x/apiserver.sock,fork,unlink-early,mode=600",
      "TCP4:127.0.0.1:41000",
    ]);
    expect(fabricAddressLines(plan)).toEqual([
      "addr add 192.168.1.253/32 dev lan1",
      "addr add 192.168.2.253/32 dev lan2",
      "addr add 192.168.3.253/32 dev lan3",
    ]);
  });

  test("pods get the kubernetes Service's variables: the first address of the primary service CIDR", () => {
    expect(kubernetesServiceIP(c1)).toBe("10.96.0.1");
    expect(kubernetesServiceEnv(c1)).toContain("KUBERNETES_SERVICE_HOST=10.96.0.1");
    expect(kubernetesServiceEnv(c1)).toContain("KUBERNETES_SERVICE_PORT=443");
    const v6 = { ...c1, ipFamily: "ipv6" as const, serviceCIDRs: ["fd96:1::/112"] };
    expect(kubernetesServiceEnv(v6)).toContain("KUBERNETES_PORT=tcp://[fd96:1::1]:443");
  });

  test("pod egress masquerade: only from the cluster's pod CIDRs to the lab's LANs (pod-to-pod untouched)", () => {
    const nft = renderPodEgress(plan, c1);
    expect(nft).toContain(
      "ip saddr { 10.244.0.0/16 } ip daddr { 192.168.1.0/24, 192.168.2.0/24, 192.168.3.0/24 } masquerade",
    );
    expect(nft).toContain("ip6 saddr { fd10:1::/48 } ip6 daddr {");
    expect(nft).not.toMatch(/daddr \{[^}]*10\.24[45]/);
    // Idempotent: the table is declared, deleted and re-created.
    expect(nft.split("\n").slice(0, 2)).toEqual([
      "table inet kosmoslab-egress",
      "delete table inet kosmoslab-egress",
    ]);
    expect(renderPodEgress(plan, c3)).not.toContain("ip6 saddr");
  });
});

describe("the demo's cross-cluster targets", () => {
  const pod = (cluster: string, name: string, ips: string[]) => ({
    cluster,
    name,
    node: "node-1",
    uid: `${name}-uid`,
    ips,
  });
  const pods = [
    pod("c1", "a1", ["10.244.1.20", "fd10:1:0:1::20"]),
    pod("c1", "a2", ["10.244.2.20", "fd10:1:0:2::20"]),
    pod("c2", "b1", ["10.245.1.20", "fd10:2:0:1::20"]),
    pod("c3", "c1p", ["10.244.1.21"]),
  ];
  const t = demoTargets(plan, pods);

  test("one source per cluster, every pod of every other cluster, never its own cluster", () => {
    expect(new Set(t.map((x) => x.src.name))).toEqual(new Set(["a1", "b1", "c1p"]));
    expect(t.every((x) => x.src.cluster !== x.dst.cluster)).toBe(true);
  });

  test("a cluster whose pod CIDR overlaps is reached at its global IP; IPv6 only from dual-stack sources", () => {
    expect(t.filter((x) => x.dst.name === "c1p").map((x) => x.ip)).toEqual(["242.3.1.21", "242.3.1.21"]);
    expect(t.filter((x) => x.src.name === "c1p").every((x) => !x.ip.includes(":"))).toBe(true);
    expect(t.some((x) => x.src.name === "a1" && x.ip === "fd10:2:0:1::20")).toBe(true);
    // c1's own pods as seen from c3 are global too (c1 maps 10.244.0.0/16 → 242.1.0.0/16).
    expect(t.filter((x) => x.src.name === "c1p" && x.dst.cluster === "c1").map((x) => x.ip)).toEqual([
      "242.1.1.20",
      "242.1.2.20",
    ]);
  });
});
