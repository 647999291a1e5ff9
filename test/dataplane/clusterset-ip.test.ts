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

interface TopoOpts {
  /** The endpoints' readiness (both). */
  ready?: boolean;
  /** More ports of the import: a TCP port and a UDP port no slice has a target port for. */
  extraPorts?: boolean;
}

function topology(affinity: boolean, o: TopoOpts = {}): Topology {
  const ready = o.ready ?? true;
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
        ports: [
          { name: "tcp", port: 80, protocol: "TCP" },
          ...(o.extraPorts
            ? [
                { name: "admin", port: 81, protocol: "TCP" as const },
                { name: "dns", port: 53, protocol: "UDP" as const },
              ]
            : []),
        ],
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
          { addresses: ["10.60.1.2"], ready, node: "c1-n1" },
          { addresses: ["10.60.2.2"], ready, node: "c1-n2" },
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

/** A TCP connect with curl -v: its exit code (7 when refused, 28 on timeout) and verbose stderr (the errno). */
async function curlConnect(ns: Netns, addr: string, port: number): Promise<{ code: number; err: string }> {
  const r = await ns.exec(
    ["curl", "-sSv", "--connect-timeout", "5", "-o", "/dev/null", `http://${addr}:${port}/`],
    {
      allowFail: true,
    },
  );
  return { code: r.code, err: r.stderr.trim() };
}

/** One UDP datagram on a connected socket, then a read: the error socat reports ("" on silence). */
async function udpProbe(ns: Netns, addr: string, port: number): Promise<string> {
  const r = await ns.exec(["socat", "-T3", "-", `UDP:${addr}:${port}`], { input: "ping\n", allowFail: true });
  return r.stderr.trim();
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

  test("a ClusterSetIP without ready endpoints refuses at once (TCP and UDP); connects once an endpoint is ready", async () => {
    const { node, client } = await makeLab(scope);
    const rec = new Reconciler({ runner: node.runner() });
    expect((await rec.reconcile(state(topology(false, { ready: false, extraPorts: true })))).errors).toEqual(
      [],
    );
    const tcp = await curlConnect(client, VIP, 80);
    expect(tcp.code).toBe(7); // CURLE_COULDNT_CONNECT, not 28 (timeout)
    expect(tcp.err).toContain("Connection refused");
    expect(await udpProbe(client, VIP, 53)).toContain("Connection refused");
    // from the node itself (OUTPUT) too
    expect((await curlConnect(node, VIP, 80)).err).toContain("Connection refused");
    expect((await rec.reconcile(state(topology(false, { ready: true, extraPorts: true })))).errors).toEqual(
      [],
    );
    expect(["b1", "b2"]).toContain(await fetchVia(client, VIP, 80));
  }, 60_000);

  test("per port: a port with backends keeps its DNAT, a port without refuses", async () => {
    const { node, client } = await makeLab(scope);
    const rec = new Reconciler({ runner: node.runner() });
    expect((await rec.reconcile(state(topology(false, { extraPorts: true })))).errors).toEqual([]);
    expect([...(await answers(client, 20))].sort()).toEqual(["b1", "b2"]);
    const admin = await curlConnect(client, VIP, 81);
    expect(admin.code).toBe(7);
    expect(admin.err).toContain("Connection refused");
    expect(await udpProbe(client, VIP, 53)).toContain("Connection refused");
  }, 60_000);
});
