/**
 * The pure parts of `kosmosctl check --inventory FILE -p dns` (clusterset names on a real cluster
 * set): which pods are asked, which resolver each one asks (its resolv.conf, its node's agent DNS, a
 * given address), the pods that cannot be checked and why, and how the probe script is invoked
 * through a pod runner (the agent's exec API in production).
 */
import { describe, expect, test } from "bun:test";
import {
  askResolver,
  type Endpoint,
  hasDnsTargets,
  type Inventory,
  inventoryResolverPods,
  type PodRun,
  parseResolverChoice,
  RESOLVER_SCRIPT,
  readsPodResolvConf,
} from "../../internal/netcheck/index.ts";

const node = (cluster: string, n: string, ipv4?: string): Endpoint => ({
  id: `${cluster}-${n}`,
  kind: "node",
  cluster,
  node: `${cluster}-${n}`,
  ...(ipv4 ? { ipv4 } : {}),
  execPrefix: [],
});

const pod = (cluster: string, n: string, id: string, execPrefix: string[], extra: Partial<Endpoint> = {}) =>
  ({ id, kind: "pod", cluster, node: `${cluster}-${n}`, execPrefix, ...extra }) as Endpoint;

const inv: Inventory = {
  name: "prod",
  clusters: [
    { name: "c1", networkType: "p2p", ipFamily: "dual", podEgressSNAT: true, kubeconfig: "c1.kubeconfig" },
    { name: "c2", networkType: "gateway", ipFamily: "ipv4", podEgressSNAT: true },
  ],
  agents: { "c1-node-1": { url: "https://10.0.0.11:5678" }, "c2-node-1": { url: "https://10.0.1.11:5678" } },
  endpoints: [
    node("c1", "node-1", "10.0.0.11"),
    node("c2", "node-1"),
    pod("c1", "node-1", "probe-a", ["nsenter", "-t", "4242", "-n", "-m", "--"]),
    pod("c1", "node-1", "probe-b", ["nsenter", "--net=/proc/77/ns/net"]),
    pod("c2", "node-1", "probe-c", ["nsenter", "--net=/proc/88/ns/net", "--mount=/proc/88/ns/mnt"]),
    pod("c2", "node-1", "probe-d", ["nsenter", "--net=/proc/99/ns/net"], { dnsResolver: "10.0.1.11" }),
  ],
};

describe("--resolver", () => {
  test("resolv.conf, node, IPv4 and IPv6 addresses; anything else is refused", () => {
    expect(parseResolverChoice("resolv.conf")).toEqual({ kind: "resolv.conf" });
    expect(parseResolverChoice("node")).toEqual({ kind: "node" });
    expect(parseResolverChoice("169.254.20.11")).toEqual({ kind: "address", address: "169.254.20.11" });
    expect(parseResolverChoice("fd00::53")).toEqual({ kind: "address", address: "fd00::53" });
    expect(parseResolverChoice("300.1.1.1")).toBeUndefined();
    expect(parseResolverChoice("dns.example")).toBeUndefined();
  });
});

describe("which prefixes read the pod's own resolv.conf", () => {
  test("ip netns exec and nsenter into a mount namespace do; nsenter --net alone and no prefix do not", () => {
    expect(readsPodResolvConf(["ip", "netns", "exec", "kl-x-c1-node-1-pod-1"])).toBe(true);
    expect(readsPodResolvConf(["nsenter", "-t", "1", "-n", "-m", "--"])).toBe(true);
    expect(readsPodResolvConf(["nsenter", "-t", "1", "-nm"])).toBe(true);
    expect(readsPodResolvConf(["/usr/bin/nsenter", "--net=/proc/1/ns/net", "--mount=/proc/1/ns/mnt"])).toBe(
      true,
    );
    expect(readsPodResolvConf(["nsenter", "--net=/proc/1/ns/net"])).toBe(false);
    expect(readsPodResolvConf(["nsenter", "-t", "1", "-n"])).toBe(false);
    expect(readsPodResolvConf([])).toBe(false);
  });
});

describe("the pods an inventory's check asks", () => {
  test("resolv.conf: pods entered into their mount namespace, or with their own dnsResolver; the others say why", () => {
    const r = inventoryResolverPods(inv, { kind: "resolv.conf" });
    expect(r.pods.map((p) => [p.id, p.resolver])).toEqual([
      ["probe-a", undefined],
      ["probe-c", undefined],
      ["probe-d", "10.0.1.11"],
    ]);
    expect(Object.keys(r.errors)).toEqual(["probe-b"]);
    expect(r.errors["probe-b"]).toContain("does not enter the pod's mount namespace");
  });

  test("node: the node endpoint's address; a node without one cannot be checked", () => {
    const r = inventoryResolverPods(inv, { kind: "node" });
    expect(r.pods.map((p) => [p.id, p.resolver])).toEqual([
      ["probe-a", "10.0.0.11"],
      ["probe-b", "10.0.0.11"],
      ["probe-d", "10.0.1.11"],
    ]);
    expect(r.errors["probe-c"]).toContain("no node endpoint for c2-node-1");
  });

  test("an address for every pod (a pod's own dnsResolver wins); --src restricts the clusters", () => {
    const r = inventoryResolverPods(inv, { kind: "address", address: "169.254.20.11" }, ["c2"]);
    expect(r.pods.map((p) => [p.id, p.cluster, p.node, p.resolver])).toEqual([
      ["probe-c", "c2", "c2-node-1", "169.254.20.11"],
      ["probe-d", "c2", "c2-node-1", "10.0.1.11"],
    ]);
    expect(r.errors).toEqual({});
  });

  test("-p dns alone means the clusterset check only without DNS server targets", () => {
    expect(hasDnsTargets(inv)).toBe(false);
    expect(hasDnsTargets({ ...inv, endpoints: [{ ...node("c1", "node-2"), dnsPort: 53 }] })).toBe(true);
  });
});

describe("the probe script through a pod runner", () => {
  test("argv, queries on stdin, the resolver as the script's second argument, a bound for all queries", async () => {
    const calls: Array<{ argv: string[]; input: string; timeoutSec: number }> = [];
    const run: PodRun = async (argv, input, timeoutSec) => {
      calls.push({ argv, input, timeoutSec });
      return {
        code: 0,
        stdout: "resolver 10.0.0.11\n0\tok\t00 01\n1\tfail\tno answer from 10.0.0.11 in 2 s\n",
        stderr: "",
      };
    };
    const q = [
      { key: "0", query: "\\x00\\x01" },
      { key: "1", query: "\\x00\\x02" },
    ];
    const r = await askResolver(run, q, 2, "10.0.0.11");
    expect(calls).toEqual([
      {
        argv: ["bash", "-c", RESOLVER_SCRIPT, "kosmos-dns", "2", "10.0.0.11"],
        input: "0 \\x00\\x01\n1 \\x00\\x02\n",
        timeoutSec: 14,
      },
    ]);
    expect(r.resolver).toBe("10.0.0.11");
    expect(r.replies.get("0")).toEqual({ hex: "00 01", detail: "" });
    expect(r.replies.get("1")?.detail).toBe("no answer from 10.0.0.11 in 2 s");
    await askResolver(run, q, 2);
    expect(calls[1]?.argv).toEqual(["bash", "-c", RESOLVER_SCRIPT, "kosmos-dns", "2"]);
  });

  test("an agent that cannot be reached is the pod's error, not a crash", async () => {
    const r = await askResolver(
      async () => {
        throw new Error("cannot reach https://10.0.0.11:5678: ECONNREFUSED");
      },
      [{ key: "0", query: "\\x00" }],
      2,
    );
    expect(r.error).toContain("ECONNREFUSED");
    expect(r.replies.size).toBe(0);
  });
});
