import { describe, expect, test } from "bun:test";
import {
  type ClusterObject,
  clusterNodeName,
  desiredClusterNodes,
  detectPodCIDRs,
  detectServiceCIDRs,
  Seeder,
  topologyHash,
  toTopology,
} from "../../internal/controller/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const cluster = (
  name: string,
  o: NonNullable<ClusterObject["spec"]["clusterLinkOptions"]> = {},
  status?: ClusterObject["status"],
): ClusterObject => ({
  metadata: { name },
  spec: { clusterLinkOptions: o },
  ...(status ? { status } : {}),
});

describe("mapping CRDs → Topology", () => {
  test("upstream-shaped ClusterNodes: roles compared case-insensitively, cluster from the label when spec.clusterName is missing", () => {
    const t = toTopology(
      [cluster("c1", {}, { clusterLinkStatus: { podCIDRs: ["10.0.0.0/16"] } })],
      [
        {
          metadata: { name: "c1-a", labels: { "kosmos.io/cluster": "c1" } },
          spec: { ip: "192.168.0.1", roles: ["Gateway"] },
        },
        {
          metadata: { name: "c1-b" },
          spec: { clusterName: "c1", nodeName: "b", ip: "192.168.0.2", roles: ["GATEWAY"] },
        },
        {
          metadata: { name: "c1-c" },
          spec: { clusterName: "c1", nodeName: "c", ip: "192.168.0.3", roles: ["other"] },
        },
        { metadata: { name: "orphan" }, spec: { ip: "192.168.0.4" } },
      ],
    );
    expect(t.nodes.map((n) => [n.name, n.cluster, n.gatewayCandidate])).toEqual([
      ["c1-a", "c1", true],
      ["c1-b", "c1", true],
      ["c1-c", "c1", false],
    ]);
  });

  test("upstream fields map to the topology model", () => {
    const t = toTopology(
      [
        cluster(
          "b",
          {
            networkType: "gateway",
            ipFamily: "all",
            globalCIDRsMap: { "10.244.0.0/16": "20.1.0.0/16" },
            nodeElasticIPMap: { n2: "1.2.3.4" },
          },
          { clusterLinkStatus: { podCIDRs: ["10.244.0.0/16"], serviceCIDRs: ["10.96.0.0/12"] } },
        ),
        cluster(
          "a",
          {
            ipFamily: "ipv6",
            clusterpodCIDRs: ["fd00:10::/56"],
            bridgeCIDRs: { ip: "221.0.0.0/8", ip6: "9481::/16" },
          },
          { clusterLinkStatus: { podCIDRs: ["ignored/8"] } },
        ),
        cluster("off", { enable: false }),
      ],
      [
        {
          metadata: { name: "b-n2" },
          spec: {
            clusterName: "b",
            nodeName: "n2",
            ip: "192.168.1.2",
            podCIDRs: ["10.244.2.0/24"],
            roles: ["gateway"],
          },
        },
        {
          metadata: { name: "a-n1" },
          spec: {
            clusterName: "a",
            nodeName: "n1",
            ip6: "fd00::1",
            interfaceName: "eth1",
            elasticip: "5.6.7.8",
          },
        },
        { metadata: { name: "x-n9" }, spec: { clusterName: "unknown", nodeName: "n9" } },
      ],
    );
    expect(t.clusters.map((c) => c.name)).toEqual(["a", "b"]);
    expect(t.clusters[0]).toMatchObject({
      ipFamily: "ipv6",
      podCIDRs: ["fd00:10::/56"],
      bridgeCIDRs: { ip: "221.0.0.0/8", ip6: "9481::/16" },
    });
    expect(t.clusters[1]).toMatchObject({
      networkType: "gateway",
      ipFamily: "dual",
      serviceCIDRs: ["10.96.0.0/12"],
      globalCIDRs: { "10.244.0.0/16": "20.1.0.0/16" },
      bridgeCIDRs: { ip: "220.0.0.0/8" },
    });
    expect(t.nodes).toEqual([
      {
        name: "a-n1",
        cluster: "a",
        ipv6: "fd00::1",
        podCIDRs: [],
        gatewayCandidate: false,
        elasticIP: "5.6.7.8",
        interfaceName: "eth1",
      },
      {
        name: "b-n2",
        cluster: "b",
        ipv4: "192.168.1.2",
        podCIDRs: ["10.244.2.0/24"],
        gatewayCandidate: true,
        elasticIP: "1.2.3.4",
      },
    ]);
  });

  test("hash is stable under input order and changes with content", () => {
    const a = toTopology([cluster("a"), cluster("b")], []);
    const b = toTopology([cluster("b"), cluster("a")], []);
    expect(topologyHash(a)).toBe(topologyHash(b));
    expect(topologyHash(toTopology([cluster("a", { networkType: "gateway" }), cluster("b")], []))).not.toBe(
      topologyHash(a),
    );
  });

  test("member Nodes → ClusterNodes (addresses, podCIDRs, gateway label, NIC, EIP)", () => {
    const c = cluster("c1", {
      nicNodeNames: [{ interfaceName: "eth9", nodeName: ["m1"] }],
      nodeElasticIPMap: { m2: "9.9.9.9" },
    });
    const out = desiredClusterNodes(c, [
      {
        metadata: { name: "m1", labels: { "kosmos.io/gateway": "true" } },
        spec: { podCIDRs: ["10.1.0.0/24", "fd00:1::/64"] },
        status: {
          addresses: [
            { type: "InternalIP", address: "10.0.0.1" },
            { type: "InternalIP", address: "fd00::1" },
            { type: "Hostname", address: "m1" },
          ],
        },
      },
      {
        metadata: { name: "m2" },
        spec: { podCIDR: "10.1.1.0/24" },
        status: { addresses: [{ type: "InternalIP", address: "10.0.0.2" }] },
      },
    ]);
    expect(out).toEqual([
      {
        metadata: { name: "c1-m1" },
        spec: {
          clusterName: "c1",
          nodeName: "m1",
          ip: "10.0.0.1",
          ip6: "fd00::1",
          podCIDRs: ["10.1.0.0/24", "fd00:1::/64"],
          roles: ["gateway"],
          interfaceName: "eth9",
        },
      },
      {
        metadata: { name: "c1-m2" },
        spec: {
          clusterName: "c1",
          nodeName: "m2",
          ip: "10.0.0.2",
          podCIDRs: ["10.1.1.0/24"],
          elasticip: "9.9.9.9",
        },
      },
    ]);
    // gateway cluster without labelled nodes: every node is a candidate
    const g = desiredClusterNodes(cluster("g", { networkType: "gateway" }), [{ metadata: { name: "x" } }]);
    expect(g[0]!.spec?.roles).toEqual(["gateway"]);
    expect(clusterNodeName("c", "Node_A.example")).toBe("c-node-a-example");
    expect(clusterNodeName("c".repeat(40), "n".repeat(40)).length).toBeLessThanOrEqual(63);
  });
});

describe("CIDR detection", () => {
  const pod = (component: string, args: string[]) => ({
    metadata: { labels: { component } },
    spec: { containers: [{ command: [component, ...args] }] },
  });
  test("pod CIDRs: override > calico > controller-manager > nodes", () => {
    expect(detectPodCIDRs({ override: ["1.0.0.0/8"], ipPools: [{ spec: { cidr: "2.0.0.0/8" } }] })).toEqual({
      cidrs: ["1.0.0.0/8"],
      source: "override",
    });
    expect(
      detectPodCIDRs({
        ipPools: [{ spec: { cidr: "2.0.0.0/8" } }, { spec: { cidr: "3.0.0.0/8", disabled: true } }],
      }),
    ).toEqual({ cidrs: ["2.0.0.0/8"], source: "calico-ippool" });
    expect(
      detectPodCIDRs({
        controllerManagerPods: [pod("kube-controller-manager", ["--cluster-cidr=10.244.0.0/16,fd00::/56"])],
      }),
    ).toEqual({ cidrs: ["10.244.0.0/16", "fd00::/56"], source: "controller-manager" });
    expect(
      detectPodCIDRs({
        nodes: [{ spec: { podCIDRs: ["10.1.0.0/24"] } }, { spec: { podCIDR: "10.1.1.0/24" } }],
      }),
    ).toEqual({ cidrs: ["10.1.0.0/24", "10.1.1.0/24"], source: "nodes" });
  });
  test("service CIDRs: apiserver flag, else the Service API error", () => {
    expect(
      detectServiceCIDRs({
        apiserverPods: [pod("kube-apiserver", ["--service-cluster-ip-range", "10.96.0.0/12"])],
      }),
    ).toEqual({ cidrs: ["10.96.0.0/12"], source: "apiserver-flag" });
    expect(
      detectServiceCIDRs({
        serviceErrorMessage:
          "failed to allocate IP 0.0.0.1: the provided IP (0.0.0.1) is not in the valid range. The range of valid IPs is 10.100.0.0/16",
      }),
    ).toEqual({ cidrs: ["10.100.0.0/16"], source: "service-api" });
  });
});

describe("Seeder", () => {
  const topo = (n: string): Topology => toTopology([cluster(n)], []);
  test("pushes only on change, retries failures with backoff", async () => {
    const calls: string[] = [];
    let failNext = 1;
    const timers: (() => void)[] = [];
    const s = new Seeder({
      agents: [{ url: "http://a", token: "mapping-token-0123456789" }],
      pusher: async (_e, t) => {
        calls.push(t.clusters[0]!.name);
        if (failNext-- > 0) throw new Error("down");
      },
      setTimer: (fn) => timers.push(fn),
    });
    s.update(topo("x"));
    await Bun.sleep(0);
    expect(s.status().agents[0]!.failures).toBe(1);
    timers.shift()!(); // backoff elapsed
    await s.settled();
    s.update(topo("x")); // unchanged: no push
    s.update(topo("y"));
    await s.settled();
    expect(calls).toEqual(["x", "x", "y"]);
    s.stop();
  });
});
