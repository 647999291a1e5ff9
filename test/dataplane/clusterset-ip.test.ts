/**
 * ClusterSetIP DNAT on a real kernel: a client "pod" behind a node reaches two backend "pods" through
 * the VIP (load balanced per connection), ClientIP affinity pins it to one backend, an endpoint on a
 * node gossip declares dead leaves the backends, and traffic through the affinity sets does not look
 * like tampering to the reconciler. The intent comes from the real planner step (planServices).
 */
import { describe, expect, test } from "bun:test";
import { emptyHostState, type HostState, Reconciler } from "../../internal/dataplane/index.ts";
import { buildContext } from "../../internal/planner/context.ts";
import { planServices } from "../../internal/planner/steps/services.ts";
import type { MemberState, Topology } from "../../internal/topology/index.ts";
import type { Netns, NetnsScope } from "../helpers/netns.ts";
import { netnsSuite } from "../helpers/netns-suite.ts";

const { root, scope } = await netnsSuite({ sweep: false });
const VIP = "241.0.0.10";

interface Lab {
  node: Netns;
  client: Netns;
}

async function makeLab(s: NetnsScope): Promise<Lab> {
  const node = await s.netns("mcsnode");
  const client = await s.netns("mcscli");
  await s.veth(client, node, { aAddr: "10.50.0.2/24", bAddr: "10.50.0.1/24" });
  await client.exec(["ip", "route", "add", "default", "via", "10.50.0.1"]);
  // A node has a default route; a socket needs a route to the VIP before OUTPUT can DNAT it.
  await node.exec(["ip", "route", "add", "default", "via", "10.50.0.2"]);
  for (const [i, name] of [
    [1, "b1"],
    [2, "b2"],
  ] as const) {
    const b = await s.netns(`mcs${name}`);
    await s.veth(b, node, { aAddr: `10.60.${i}.2/24`, bAddr: `10.60.${i}.1/24` });
    await b.exec(["ip", "route", "add", "default", "via", `10.60.${i}.1`]);
    s.spawn(b, ["socat", "TCP-LISTEN:8080,fork,reuseaddr", `SYSTEM:echo ${name}`]);
    // wait until it answers (directly, no VIP): a signal, not a sleep
    for (let t = 0; t < 100; t++) {
      if ((await fetchVia(client, `10.60.${i}.2`, 8080)) === name) break;
    }
  }
  return { node, client };
}

/** One TCP connection from `ns` to addr:port; what the server said. */
async function fetchVia(ns: Netns, addr: string, port: number): Promise<string> {
  const r = await ns.exec(["socat", "-T2", "-", `TCP:${addr}:${port},connect-timeout=2`], {
    allowFail: true,
  });
  return r.stdout.trim();
}

function topology(affinity: boolean): Topology {
  return {
    clusters: [
      {
        name: "c1",
        networkType: "p2p",
        ipFamily: "ipv4",
        podCIDRs: ["10.60.0.0/16"],
        serviceCIDRs: [],
        globalCIDRs: {},
        bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
        localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
      },
    ],
    nodes: [
      { name: "c1-n1", cluster: "c1", ipv4: "192.168.9.1", podCIDRs: [], gatewayCandidate: false },
      { name: "c1-n2", cluster: "c1", ipv4: "192.168.9.2", podCIDRs: [], gatewayCandidate: false },
    ],
    serviceImports: [
      {
        name: "demo/echo",
        namespace: "demo",
        service: "echo",
        type: "ClusterSetIP",
        ips: [VIP],
        ports: [{ name: "tcp", port: 80, protocol: "TCP" }],
        sessionAffinity: affinity ? "ClientIP" : "None",
        ...(affinity ? { affinityTimeoutSeconds: 600 } : {}),
        clusters: ["c1"],
      },
    ],
    serviceEndpoints: [
      {
        name: "demo/echo/c1/echo-x",
        namespace: "demo",
        service: "echo",
        cluster: "c1",
        slice: "echo-x",
        addressType: "IPv4",
        ports: [{ name: "tcp", port: 8080, protocol: "TCP" }],
        endpoints: [
          { addresses: ["10.60.1.2"], ready: true, node: "c1-n1" },
          { addresses: ["10.60.2.2"], ready: true, node: "c1-n2" },
        ],
      },
    ],
  };
}

function state(t: Topology, members: Record<string, MemberState> = {}): HostState {
  const hs = emptyHostState("c1-n1", "c1");
  hs.nft.serviceVips = planServices(
    buildContext({ topology: t, self: "c1-n1", members, electionMembers: members }),
  );
  return hs;
}

async function answers(ns: Netns, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) seen.add(await fetchVia(ns, VIP, 80));
  return seen;
}

describe.skipIf(!root)("ClusterSetIP DNAT (nftables) on a real kernel", () => {
  test("connections to the VIP reach both backends; from the node itself too", async () => {
    const { node, client } = await makeLab(scope);
    const rec = new Reconciler({ runner: node.runner() });
    expect((await rec.reconcile(state(topology(false)))).errors).toEqual([]);
    // 20 connections, each backend chosen with p = 1/2: both are seen (all one: p = 2^-19)
    expect([...(await answers(client, 20))].sort()).toEqual(["b1", "b2"]);
    expect(["b1", "b2"]).toContain(await fetchVia(node, VIP, 80));
  }, 60_000);

  test("ClientIP affinity pins a client to one backend; traffic in the affinity sets is not tampering", async () => {
    const { node, client } = await makeLab(scope);
    const rec = new Reconciler({ runner: node.runner() });
    const hs = state(topology(true));
    expect((await rec.reconcile(hs)).errors).toEqual([]);
    expect((await answers(client, 8)).size).toBe(1);
    const again = await rec.reconcile(hs);
    expect(again.errors).toEqual([]);
    expect(again.applied).toBe(0);
  }, 60_000);

  test("an endpoint on a node gossip declares dead leaves the backends; back when alive", async () => {
    const { node, client } = await makeLab(scope);
    const rec = new Reconciler({ runner: node.runner() });
    expect((await rec.reconcile(state(topology(false), { "c1-n2": "dead" }))).errors).toEqual([]);
    expect([...(await answers(client, 8))]).toEqual(["b1"]);
    expect((await rec.reconcile(state(topology(false), { "c1-n2": "alive" }))).errors).toEqual([]);
    expect([...(await answers(client, 20))].sort()).toEqual(["b1", "b2"]);
  }, 60_000);
});
