/** Agent discovery (ClusterNodes → endpoints) and the Seeder's per-cluster selection and rotation. */
import { describe, expect, test } from "bun:test";
import {
  type AgentEndpoint,
  type ClusterNodeObject,
  discoverAgents,
  FINGERPRINT_ANNOTATION,
  Seeder,
} from "../../internal/controller/index.ts";
import type { Topology } from "../../internal/topology/index.ts";

const cn = (
  name: string,
  cluster: string,
  spec: Partial<ClusterNodeObject["spec"]>,
  annotations?: Record<string, string>,
): ClusterNodeObject => ({
  metadata: { name, ...(annotations ? { annotations } : {}) },
  spec: { clusterName: cluster, nodeName: name, ...spec },
});

describe("discoverAgents (pure)", () => {
  const nodes = [
    cn("a-n3", "a", { ip: "10.0.0.3" }),
    cn("a-n1", "a", { ip: "10.0.0.1" }),
    cn("a-n2", "a", { ip: "10.0.0.2", roles: ["gateway"] }, { [FINGERPRINT_ANNOTATION]: "AB:CD" }),
    cn("b-n1", "b", { ip6: "fd00::1" }),
    cn("b-n2", "b", { ip: "10.1.0.2", ip6: "fd00::2" }),
    cn("b-n3", "b", {}), // no address yet: skipped
  ];
  test("per cluster, gateway candidates first then by name; IPv4 preferred, IPv6 bracketed", () => {
    const g = discoverAgents(nodes, { token: "discovery-token-0123456789", port: 7000 });
    expect(Object.keys(g).sort()).toEqual(["a", "b"]);
    expect(g.a!.map((e) => e.url)).toEqual([
      "https://10.0.0.2:7000",
      "https://10.0.0.1:7000",
      "https://10.0.0.3:7000",
    ]);
    expect(g.b!.map((e) => e.url)).toEqual(["https://[fd00::1]:7000", "https://10.1.0.2:7000"]);
    expect(g.a!.every((e) => e.token === "discovery-token-0123456789")).toBe(true);
  });
  test("TLS: the published fingerprint is pinned, otherwise no TLS options (the pusher proves the certificate); http has no TLS", () => {
    const g = discoverAgents(nodes, { token: "discovery-token-0123456789" });
    expect(g.a![0]).toMatchObject({ url: "https://10.0.0.2:5678", tls: { fingerprint256: "AB:CD" } });
    expect(g.a![1]!.tls).toBeUndefined();
    const h = discoverAgents(nodes, { token: "discovery-token-0123456789", scheme: "http" });
    expect(h.a![0]!.url).toBe("http://10.0.0.2:5678");
    expect(h.a![0]!.tls).toBeUndefined();
  });
});

describe("Seeder groups", () => {
  const topo = (n: number): Topology => ({ clusters: [], nodes: [], mtu: 1400 + n }) as unknown as Topology;
  const ep = (url: string): AgentEndpoint => ({ url, token: "discovery-token-0123456789" });

  test("only `perGroup` agents per group are pushed; a failed push rotates to the next candidate", async () => {
    const down = new Set(["a1"]);
    const pushed: string[] = [];
    const s = new Seeder({
      perGroup: 2,
      minBackoffMs: 60_000,
      pusher: async (e) => {
        if (down.has(e.url)) throw new Error("refused");
        pushed.push(e.url);
      },
    });
    s.setGroups({ a: ["a1", "a2", "a3", "a4"].map(ep), b: ["b1"].map(ep) });
    s.update(topo(1));
    await s.settled();
    // a1 failed → a3 took its place; a4 never contacted; b1 alone in its group.
    expect(pushed.sort()).toEqual(["a2", "a3", "b1"]);
    const st = s.status();
    expect(st.agents.find((a) => a.url === "a1")).toMatchObject({ active: false, failures: 1 });
    expect(
      st.agents
        .filter((a) => a.active)
        .map((a) => a.url)
        .sort(),
    ).toEqual(["a2", "a3", "b1"]);
    // A new topology goes to the active ones only.
    pushed.length = 0;
    s.update(topo(2));
    await s.settled();
    expect(pushed.sort()).toEqual(["a2", "a3", "b1"]);
    // Candidates change (a2 gone): a4 becomes active and gets the current topology.
    pushed.length = 0;
    s.setGroups({ a: ["a1", "a3", "a4"].map(ep), b: ["b1"].map(ep) }, 2);
    await s.settled();
    expect(pushed).toEqual(["a4"]);
    s.stop();
  });

  test("an explicit list keeps every agent active", async () => {
    const pushed: string[] = [];
    const s = new Seeder({
      agents: ["x", "y", "z", "w"].map(ep),
      pusher: async (e) => {
        pushed.push(e.url);
      },
    });
    s.update(topo(1));
    await s.settled();
    expect(pushed.sort()).toEqual(["w", "x", "y", "z"]);
    s.stop();
  });
});
