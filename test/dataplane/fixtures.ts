/** Hand-built HostStates and a two-node underlay for dataplane tests. */
import { emptyHostState, type HostState, type VxlanDevice } from "../../internal/dataplane/index.ts";
import { ControlLoop, type LoopDeps } from "../../internal/agent/loop.ts";
import { detectCapabilities, Reconciler } from "../../internal/dataplane/index.ts";
import { createRegistry, silentLogger } from "../../internal/observability/index.ts";
import type { Store } from "../../internal/store/index.ts";
import type { Node, Topology } from "../../internal/topology/index.ts";
import type { Netns, NetnsScope } from "../helpers/netns.ts";

export interface NodeSpec {
  idx: 1 | 2;
  underlay4: string;
  underlay6: string;
  mac: string;
  mac6: string;
  overlay4: string;
  overlay6: string;
  pod4: string;
  pod6: string;
}

export const NODES: Record<1 | 2, NodeSpec> = {
  1: {
    idx: 1,
    underlay4: "192.168.77.1",
    underlay6: "fd77::1",
    mac: "aa:00:00:00:77:01",
    mac6: "aa:00:00:06:77:01",
    overlay4: "220.168.77.1",
    overlay6: "9480::77:1",
    pod4: "10.1.0.0/24",
    pod6: "fd01:1::/64",
  },
  2: {
    idx: 2,
    underlay4: "192.168.77.2",
    underlay6: "fd77::2",
    mac: "aa:00:00:00:77:02",
    mac6: "aa:00:00:06:77:02",
    overlay4: "220.168.77.2",
    overlay6: "9480::77:2",
    pod4: "10.2.0.0/24",
    pod6: "fd01:2::/64",
  },
};

/** "10.1.0.0/24" -> "10.1.0.5"; "fd01:1::/64" -> "fd01:1::5". */
export function podIp(cidr: string): string {
  const base = cidr.split("/")[0] ?? "";
  return base.includes(":") ? `${base}5` : base.replace(/\.0$/, ".5");
}

export function emptyState(node = "n"): HostState {
  return emptyHostState(node, "c", 200);
}

/** P2P HostState of node `self` towards `peer` (v4, and v6 too when dual). */
export function p2pState(
  self: NodeSpec,
  peer: NodeSpec,
  parent: string,
  opts: { dual?: boolean } = {},
): HostState {
  const s = emptyState(`node${self.idx}`);
  const v4: VxlanDevice = {
    name: "vx-bridge",
    family: 4,
    vni: 54,
    port: 4876,
    local: self.underlay4,
    parent,
    mtu: 1450,
    mac: self.mac,
    address: `${self.overlay4}/8`,
  };
  s.devices.push(v4);
  s.routes.push({ dst: peer.pod4, via: peer.overlay4, dev: "vx-bridge", family: 4, table: 200 });
  s.rules.push({ family: 4, priority: 200, table: 200 });
  s.fdb.push(
    { dev: "vx-bridge", mac: "00:00:00:00:00:00", dst: peer.underlay4 },
    { dev: "vx-bridge", mac: peer.mac, dst: peer.underlay4 },
  );
  s.neighbors.push({ dev: "vx-bridge", ip: peer.overlay4, mac: peer.mac, family: 4 });
  s.nft.overlayDevices.push("vx-bridge");
  s.nft.mssClampDevices.push("vx-bridge");
  s.nft.noMasqueradeDst.v4.push(peer.pod4);
  s.sysctls.push({ key: "net.ipv4.ip_forward", value: "1" });
  if (opts.dual) {
    s.devices.push({
      name: "vx-bridge-6",
      family: 6,
      vni: 64,
      port: 4866,
      local: self.underlay6,
      parent,
      mtu: 1430,
      mac: self.mac6,
      address: `${self.overlay6}/16`,
    });
    s.routes.push({ dst: peer.pod6, via: peer.overlay6, dev: "vx-bridge-6", family: 6, table: 200 });
    s.rules.push({ family: 6, priority: 200, table: 200 });
    s.fdb.push(
      { dev: "vx-bridge-6", mac: "00:00:00:00:00:00", dst: peer.underlay6 },
      { dev: "vx-bridge-6", mac: peer.mac6, dst: peer.underlay6 },
    );
    s.neighbors.push({ dev: "vx-bridge-6", ip: peer.overlay6, mac: peer.mac6, family: 6 });
    s.nft.overlayDevices.push("vx-bridge-6");
    s.nft.mssClampDevices.push("vx-bridge-6");
    s.nft.noMasqueradeDst.v6.push(peer.pod6);
    s.sysctls.push({ key: "net.ipv6.conf.all.forwarding", value: "1" });
  }
  return s;
}

export interface Pair {
  a: Netns;
  b: Netns;
  aIf: string;
  bIf: string;
}

/** Two namespaces joined by a veth underlay; each gets its pod addresses (x.x.x.5) on lo. */
export async function makePair(scope: NetnsScope): Promise<Pair> {
  const a = await scope.netns("a");
  const b = await scope.netns("b");
  const { aIf, bIf } = await scope.veth(a, b, {
    aName: "ul0",
    bName: "ul0",
    aAddr: [`${NODES[1].underlay4}/24`, `${NODES[1].underlay6}/64`],
    bAddr: [`${NODES[2].underlay4}/24`, `${NODES[2].underlay6}/64`],
  });
  for (const [ns, n] of [
    [a, NODES[1]],
    [b, NODES[2]],
  ] as const) {
    await ns.exec(["ip", "addr", "add", `${podIp(n.pod4)}/32`, "dev", "lo"]);
    await ns.exec(["ip", "addr", "add", `${podIp(n.pod6)}/128`, "dev", "lo"]);
  }
  return { a, b, aIf, bIf };
}

/**
 * Full listing of the kernel objects of a namespace (stable fields only) for before/after
 * comparisons: links, addresses, routes, rules, permanent neighbours, fdb, nft ruleset, xfrm.
 */
export async function snapshot(ns: Netns): Promise<Record<string, string>> {
  const run = async (argv: string[]): Promise<string> => (await ns.exec(argv, { allowFail: true })).stdout;
  const neigh = JSON.parse((await run(["ip", "-j", "neigh", "show"])) || "[]") as Array<{ state?: string[] }>;
  return {
    link: await run(["ip", "-d", "-j", "link", "show"]),
    addr: JSON.stringify(
      (
        JSON.parse((await run(["ip", "-j", "addr", "show"])) || "[]") as Array<{
          addr_info?: Array<Record<string, unknown>>;
        }>
      ).map((l) => ({
        ...l,
        addr_info: (l.addr_info ?? []).map(
          ({ valid_life_time: _v, preferred_life_time: _p, ...rest }) => rest,
        ),
      })),
    ),
    route4: await run(["ip", "-4", "-j", "route", "show", "table", "all"]),
    route6: await run(["ip", "-6", "-j", "route", "show", "table", "all"]),
    rule4: await run(["ip", "-4", "-j", "rule", "show"]),
    rule6: await run(["ip", "-6", "-j", "rule", "show"]),
    neigh: JSON.stringify(neigh.filter((n) => n.state?.includes("PERMANENT"))),
    fdb: await run(["bridge", "-j", "fdb", "show"]),
    nft: await run(["nft", "list", "ruleset"]),
    xfrmPolicy: await run(["ip", "xfrm", "policy", "list"]),
    xfrmState: await run(["ip", "xfrm", "state", "list"]),
  };
}

/**
 * Order-insensitive form of a snapshot: JSON listings parsed, generated ids (ifindex) dropped and
 * elements sorted, so two kernels holding the same objects compare equal whatever their history.
 */
export function canonical(s: Record<string, string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    const t = v.trim();
    if (t.startsWith("[")) {
      const arr = (JSON.parse(t) as Array<Record<string, unknown>>).map((o) => {
        const { ifindex: _i, link_index: _l, ...rest } = o;
        return JSON.stringify(rest);
      });
      out[k] = arr.sort();
    } else out[k] = t.split("\n").sort();
  }
  return out;
}

/** A topology node on the fixture underlay (ul0). */
export const topoNode = (name: string, cluster: string, ipv4: string, pod: string): Node => ({
  name,
  cluster,
  ipv4,
  podCIDRs: [pod],
  gatewayCandidate: false,
  interfaceName: "ul0",
});

/** A P2P IPv4 cluster with the default bridge/local CIDRs. */
export const topoCluster = (name: string, pods: string, services: string): Topology["clusters"][number] => ({
  name,
  networkType: "p2p",
  ipFamily: "ipv4",
  podCIDRs: [pods],
  serviceCIDRs: [services],
  globalCIDRs: {},
  bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
  localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
});

/** Two P2P clusters, one node each: n1 (NODES[1]) and n2 (NODES[2]). */
export const PAIR_TOPOLOGY: Topology = {
  clusters: [
    topoCluster("c1", "10.1.0.0/16", "10.201.0.0/16"),
    topoCluster("c2", "10.2.0.0/16", "10.202.0.0/16"),
  ],
  nodes: [
    topoNode("n1", "c1", NODES[1].underlay4, NODES[1].pod4),
    topoNode("n2", "c2", NODES[2].underlay4, NODES[2].pod4),
  ],
};

/**
 * A ControlLoop for node n1 of PAIR_TOPOLOGY acting on namespace `ns` with the real Reconciler
 * (n2 alive, no debounce, silent); `deps` overrides any of that.
 */
export async function loopOn(ns: Netns, store: Store, deps: Partial<LoopDeps> = {}): Promise<ControlLoop> {
  const runner = ns.runner();
  return new ControlLoop({
    node: "n1",
    store,
    reconciler: new Reconciler({ runner }),
    capabilities: await detectCapabilities(runner),
    logger: silentLogger(),
    registry: createRegistry(),
    members: () => ({ n2: "alive" }),
    debounceMs: 0,
    resyncMs: 60_000,
    ...deps,
  });
}
