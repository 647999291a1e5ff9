/**
 * The planner: (topology snapshot, self node) -> HostState. Pure: no I/O, no clocks, no randomness.
 * Follows /work/shared/design/clusterlink.md; decisions the spec leaves open are noted inline.
 *
 * Cost: one pass over all nodes (grouping + elections), then work proportional to the peers and
 * routes of `self` only. Every list is sorted so equal inputs give deep-equal outputs.
 */
import {
  type AddressFamily,
  type Cidr,
  type Cluster,
  familiesOf,
  formatIPv4Number,
  formatIPv6BigInt,
  type Node,
  type OverlayMapper,
  overlayMapper,
  type PlanInput,
  parseIPv4Number,
  parseIPv6BigInt,
  tryParseCidr,
} from "../topology/index.ts";
import { electGateways, electServiceNodes, isAlive } from "./election.ts";
import {
  type FdbEntry,
  type HostState,
  KOSMOS_ROUTE_TABLE,
  KOSMOS_RULE_PRIORITY,
  type Neighbor,
  type NftIntent,
  type PrefixMap,
  type Route,
  type Sysctl,
  type VxlanDevice,
  type XfrmPolicy,
  type XfrmState,
} from "../dataplane/index.ts";
import { ipsecKey, ipsecReqid, ipsecSpi, KOSMOS_XFRM_ICV_BITS, KOSMOS_XFRM_PRIORITY } from "./ipsec.ts";
import { vtepMac } from "./mac.ts";

export interface DeviceSpec {
  name: string;
  vni: number;
  port: number;
}

/** Device names, VNIs and UDP ports (upstream Kosmos values). */
export const DEVICES: Record<"bridge" | "local", Record<AddressFamily, DeviceSpec>> = {
  bridge: { 4: { name: "vx-bridge", vni: 54, port: 4876 }, 6: { name: "vx-bridge-6", vni: 64, port: 4866 } },
  local: { 4: { name: "vx-local", vni: 55, port: 4877 }, 6: { name: "vx-local-6", vni: 65, port: 4867 } },
};

export const DEFAULT_UNDERLAY_MTU = 1500;
/** VXLAN overhead per underlay family. */
export const VXLAN_OVERHEAD: Record<AddressFamily, number> = { 4: 50, 6: 70 };
const ZERO_MAC = "00:00:00:00:00:00";

export class PlanError extends Error {
  constructor(
    readonly code: "PLAN_SELF_UNKNOWN" | "PLAN_CLUSTER_UNKNOWN" | "PLAN_INVALID_CIDR",
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = "PlanError";
  }
}

interface GlobalMap {
  key: Cidr;
  value: Cidr;
}

/** Per-cluster data parsed once per plan. */
interface ClusterCtx {
  cluster: Cluster;
  fams: AddressFamily[];
  nodes: Node[];
  globals: GlobalMap[];
  /** IPv4 global maps as plain numbers (hot path). */
  g4: Array<{ kLo: number; kHi: number; vLo: number; len: number }>;
  bridge: Partial<Record<AddressFamily, OverlayMapper>>;
  local: Partial<Record<AddressFamily, OverlayMapper>>;
}

function mustCidr(s: string, where: string): Cidr {
  const c = tryParseCidr(s);
  if (!c) {
    throw new PlanError(
      "PLAN_INVALID_CIDR",
      `${where}: invalid CIDR ${JSON.stringify(s)}`,
      "run validateTopology first",
    );
  }
  return c;
}

function underlayOf(n: Node, f: AddressFamily): string | undefined {
  return f === 4 ? n.ipv4 : n.ipv6;
}

/** Canonical underlay address text (IPv4 strings parse strictly, so valid ones are canonical). */
function canonicalUnderlay(s: string, f: AddressFamily): string | undefined {
  if (f === 4) return parseIPv4Number(s) === undefined ? undefined : s;
  const v = parseIPv6BigInt(s);
  return v === undefined ? undefined : formatIPv6BigInt(v);
}

/** Replace `c` by its global CIDR when one of the cluster's maps covers it. */
function toGlobal(c: Cidr, globals: GlobalMap[]): Cidr {
  for (const g of globals) {
    const k = g.key;
    if (k.family === c.family && c.len >= k.len && c.base >= k.base && c.last <= k.last) {
      const base = g.value.base + (c.base - k.base);
      if (c.base === k.base && c.len === k.len) return g.value;
      const text = mustCidr(`${formatBase(c.family, base)}/${c.len}`, "global map").text;
      return { family: c.family, base, len: c.len, last: base + (c.last - c.base), text };
    }
  }
  return c;
}

function formatBase(f: AddressFamily, v: bigint): string {
  if (f === 6) return formatIPv6BigInt(v);
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** A route destination: IPv4 as plain numbers (hot path), IPv6 as a parsed Cidr. */
interface Dst {
  family: AddressFamily;
  text: string;
  len: number;
  /** IPv4 first/last address. */
  lo: number;
  hi: number;
  c?: Cidr;
}

/** Parse a (validated) CIDR of cluster `ctx` and replace it by its global CIDR where mapped. */
function dstOf(s: string, ctx: ClusterCtx, where: string): Dst {
  if (!s.includes(":")) {
    const slash = s.indexOf("/");
    const v = slash > 0 ? parseIPv4Number(s.slice(0, slash)) : undefined;
    const len = slash > 0 ? Number(s.slice(slash + 1)) : Number.NaN;
    if (v === undefined || !Number.isInteger(len) || len < 0 || len > 32)
      return fromCidr(mustCidr(s, where), ctx);
    const size = 2 ** (32 - len);
    let lo = v - (v % size);
    for (const g of ctx.g4) {
      if (len >= g.len && lo >= g.kLo && lo + size - 1 <= g.kHi) {
        lo = g.vLo + (lo - g.kLo);
        break;
      }
    }
    return { family: 4, text: `${formatIPv4Number(lo)}/${len}`, len, lo, hi: lo + size - 1 };
  }
  return fromCidr(mustCidr(s, where), ctx);
}

function fromCidr(c0: Cidr, ctx: ClusterCtx): Dst {
  const c = toGlobal(c0, ctx.globals);
  return c.family === 4
    ? { family: 4, text: c.text, len: c.len, lo: Number(c.base), hi: Number(c.last) }
    : { family: 6, text: c.text, len: c.len, lo: 0, hi: 0, c };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function plan(input: PlanInput): HostState {
  const { topology, self: selfName, members } = input;
  const warnings: string[] = [];

  // Group nodes by cluster and find self: one pass.
  const byCluster = new Map<string, Node[]>();
  let self: Node | undefined;
  for (const n of topology.nodes) {
    if (n.name === selfName) self = n;
    let list = byCluster.get(n.cluster);
    if (!list) {
      list = [];
      byCluster.set(n.cluster, list);
    }
    list.push(n);
  }
  if (!self) {
    throw new PlanError(
      "PLAN_SELF_UNKNOWN",
      `node "${selfName}" is not in the topology`,
      "check the agent's --node name",
    );
  }
  const selfNode = self;

  const ctxs = new Map<string, ClusterCtx>();
  for (const c of topology.clusters) {
    const fams = familiesOf(c.ipFamily);
    const globals: GlobalMap[] = Object.entries(c.globalCIDRs).map(([k, v]) => ({
      key: mustCidr(k, `clusters[${c.name}].globalCIDRs key`),
      value: mustCidr(v, `clusters[${c.name}].globalCIDRs[${k}]`),
    }));
    const bridge: Partial<Record<AddressFamily, OverlayMapper>> = {};
    const local: Partial<Record<AddressFamily, OverlayMapper>> = {};
    for (const f of fams) {
      bridge[f] = overlayMapper(f === 4 ? c.bridgeCIDRs.ip : c.bridgeCIDRs.ip6);
      local[f] = overlayMapper(f === 4 ? c.localCIDRs.ip : c.localCIDRs.ip6);
    }
    const g4 = globals
      .filter((g) => g.key.family === 4)
      .map((g) => ({
        kLo: Number(g.key.base),
        kHi: Number(g.key.last),
        vLo: Number(g.value.base),
        len: g.key.len,
      }));
    ctxs.set(c.name, { cluster: c, fams, nodes: byCluster.get(c.name) ?? [], globals, g4, bridge, local });
  }
  const selfCtx = ctxs.get(selfNode.cluster);
  if (!selfCtx) {
    throw new PlanError(
      "PLAN_CLUSTER_UNKNOWN",
      `node "${selfName}" references unknown cluster "${selfNode.cluster}"`,
      "run validateTopology first",
    );
  }
  const selfCluster = selfCtx.cluster;

  const electionView = input.electionMembers ?? members;
  const gateways = electGateways(topology, electionView, input.gateways, input.gatewayClaims);
  const serviceNodes = electServiceNodes(topology, electionView, input.serviceNodes);
  const nodeByName = (ctx: ClusterCtx, name: string | undefined) =>
    name === undefined ? undefined : ctx.nodes.find((n) => n.name === name);

  const isGatewayCluster = selfCluster.networkType === "gateway";
  const selfIsGateway = isGatewayCluster && gateways[selfCluster.name] === selfName;
  const hasBridge = !isGatewayCluster || selfIsGateway;
  const selfGateway = isGatewayCluster ? nodeByName(selfCtx, gateways[selfCluster.name]) : undefined;

  // Families this node actually runs: its cluster's, where it has an underlay address.
  const selfFams: AddressFamily[] = [];
  for (const f of selfCtx.fams) {
    if (underlayOf(selfNode, f) !== undefined) selfFams.push(f);
    else
      warnings.push(`node ${selfName} has no ${f === 4 ? "ipv4" : "ipv6"} underlay address: IPv${f} skipped`);
  }
  const selfHas = (f: AddressFamily) => selfFams.includes(f);

  // ---- devices
  const devices: VxlanDevice[] = [];
  const addDevice = (kind: "bridge" | "local", f: AddressFamily) => {
    const spec = DEVICES[kind][f];
    const mapper = (kind === "bridge" ? selfCtx.bridge : selfCtx.local)[f] as OverlayMapper;
    const local = canonicalUnderlay(underlayOf(selfNode, f) as string, f) as string;
    const dev: VxlanDevice = {
      name: spec.name,
      family: f,
      vni: spec.vni,
      port: spec.port,
      local,
      mtu: selfCluster.mtu ?? (selfNode.underlayMTU ?? DEFAULT_UNDERLAY_MTU) - VXLAN_OVERHEAD[f],
      mac: vtepMac(selfName, spec.name),
      address: `${mapper.ip(local)}/${mapper.len}`,
    };
    if (selfNode.interfaceName !== undefined) dev.parent = selfNode.interfaceName;
    devices.push(dev);
  };
  for (const f of selfFams) {
    if (hasBridge) addDevice("bridge", f);
    if (isGatewayCluster) addDevice("local", f);
  }

  // ---- peers (static FDB + permanent neighbours)
  /** Peer VTEPs per device; FDB and neighbour lists are emitted from these, sorted, at the end. */
  interface PeerRec {
    dst: string;
    ip: string;
    mac: string;
    /** IPv4: numeric underlay and overlay addresses (sort keys). */
    dstN: number;
    ipN: number;
  }
  const peerRecs = new Map<string, { family: AddressFamily; recs: PeerRec[] }>();
  /** Bridge overlay IP per peer node, per family (filled as peers are added; used by routes). */
  const bridgeIp: Record<AddressFamily, Map<Node, string>> = { 4: new Map(), 6: new Map() };
  const addPeer = (kind: "bridge" | "local", peer: Node, ctx: ClusterCtx) => {
    for (const f of selfFams) {
      if (!ctx.fams.includes(f)) continue;
      const u = underlayOf(peer, f);
      const mapper = (kind === "bridge" ? ctx.bridge : ctx.local)[f];
      if (u === undefined || !mapper) continue;
      let dst: string | undefined;
      let ip: string | undefined;
      let dstN = 0;
      if (f === 4 && mapper.ip4) {
        const v = parseIPv4Number(u);
        if (v === undefined) continue;
        dst = u;
        dstN = v;
        ip = mapper.ip4(v);
      } else {
        dst = canonicalUnderlay(u, f);
        ip = mapper.ip(u);
      }
      if (dst === undefined || ip === undefined) continue;
      const dev = DEVICES[kind][f].name;
      let group = peerRecs.get(dev);
      if (!group) {
        group = { family: f, recs: [] };
        peerRecs.set(dev, group);
      }
      const ipN = f === 4 ? (parseIPv4Number(ip) as number) : 0;
      group.recs.push({ dst, ip, mac: vtepMac(peer.name, dev), dstN, ipN });
      if (kind === "bridge") bridgeIp[f].set(peer, ip);
    }
  };

  /** vx-bridge nodes of every other cluster. */
  const remoteBridgeNodes: Array<{ node: Node; ctx: ClusterCtx }> = [];
  for (const ctx of ctxs.values()) {
    if (ctx.cluster.name === selfCluster.name) continue;
    if (ctx.cluster.networkType === "gateway") {
      const gw = nodeByName(ctx, gateways[ctx.cluster.name]);
      if (gw) remoteBridgeNodes.push({ node: gw, ctx });
    } else {
      for (const n of ctx.nodes) if (isAlive(members, n.name)) remoteBridgeNodes.push({ node: n, ctx });
    }
  }
  if (hasBridge) for (const { node, ctx } of remoteBridgeNodes) addPeer("bridge", node, ctx);
  if (isGatewayCluster) {
    if (selfIsGateway) {
      for (const n of selfCtx.nodes)
        if (n.name !== selfName && isAlive(members, n.name)) addPeer("local", n, selfCtx);
    } else if (selfGateway) {
      addPeer("local", selfGateway, selfCtx);
    }
  }

  // ---- routes
  const localRanges: Cidr[] = [...selfCluster.podCIDRs, ...selfCluster.serviceCIDRs].map((s) =>
    mustCidr(s, `clusters[${selfCluster.name}] pod/service CIDR`),
  );
  const overlapsLocal = (c: Cidr) => {
    for (const l of localRanges) if (l.family === c.family && l.base <= c.last && c.base <= l.last) return l;
    return undefined;
  };
  const local4 = localRanges
    .filter((l) => l.family === 4)
    .map((l) => ({ lo: Number(l.base), hi: Number(l.last), text: l.text }));
  const dstOverlapsLocal = (d: Dst): string | undefined => {
    if (d.c) return overlapsLocal(d.c)?.text;
    for (const l of local4) if (l.lo <= d.hi && d.lo <= l.hi) return l.text;
    return undefined;
  };
  const routes: Array<{ k: number; r: Route }> = [];
  const routed = new Set<string>();
  const skipped = new Map<string, string[]>();
  let noGatewayWarned = false;
  const gatewayLocalIp: Partial<Record<AddressFamily, string>> = {};
  if (selfGateway && !selfIsGateway) {
    for (const f of selfFams) {
      const u = underlayOf(selfGateway, f);
      const ip = u === undefined ? undefined : selfCtx.local[f]?.ip(u);
      if (ip !== undefined) gatewayLocalIp[f] = ip;
    }
  }
  const addRoute = (dst: Dst, target: Node, ctx: ClusterCtx) => {
    const f = dst.family;
    if (!selfHas(f)) return;
    const clash = dstOverlapsLocal(dst);
    if (clash) {
      const list = skipped.get(ctx.cluster.name) ?? [];
      list.push(`${dst.text} (overlaps ${clash})`);
      skipped.set(ctx.cluster.name, list);
      return;
    }
    let via: string | undefined;
    let dev: string;
    if (hasBridge) {
      via = bridgeIp[f].get(target);
      dev = DEVICES.bridge[f].name;
    } else {
      via = gatewayLocalIp[f];
      dev = DEVICES.local[f].name;
      if (via === undefined) {
        if (!noGatewayWarned)
          warnings.push(`cluster ${selfCluster.name} has no alive gateway: no remote routes`);
        noGatewayWarned = true;
        return;
      }
      // The gateway itself must be able to reach the target over this family.
      const tu = underlayOf(target, f);
      if (tu === undefined || !ctx.fams.includes(f)) return;
    }
    if (via === undefined) {
      if (!hasBridge) return;
      // Target not a peer on this family (e.g. it lacks the underlay address).
      const tu = underlayOf(target, f);
      const ip = tu === undefined ? undefined : ctx.bridge[f]?.ip(tu);
      if (ip === undefined) return;
      via = ip;
    }
    if (routed.has(dst.text)) {
      warnings.push(
        `duplicate destination ${dst.text} (cluster ${ctx.cluster.name}, node ${target.name}) ignored`,
      );
      return;
    }
    routed.add(dst.text);
    routes.push({
      k: f === 4 ? dst.lo * 64 + dst.len : 0,
      r: {
        dst: dst.text,
        via,
        dev,
        family: f,
        table: KOSMOS_ROUTE_TABLE,
        peer: `${ctx.cluster.name}/${target.name}`,
      },
    });
  };
  for (const ctx of ctxs.values()) {
    const c = ctx.cluster;
    if (c.name === selfCluster.name) continue;
    if (c.networkType === "gateway") {
      const gw = nodeByName(ctx, gateways[c.name]);
      if (!gw) {
        if (ctx.nodes.length > 0) warnings.push(`cluster ${c.name} has no alive gateway: unreachable`);
        continue;
      }
      for (const s of c.podCIDRs) addRoute(dstOf(s, ctx, `clusters[${c.name}].podCIDRs`), gw, ctx);
      for (const s of c.serviceCIDRs) {
        addRoute(dstOf(s, ctx, `clusters[${c.name}].serviceCIDRs`), gw, ctx);
      }
    } else {
      for (const n of ctx.nodes) {
        if (!isAlive(members, n.name)) continue;
        for (const s of n.podCIDRs) addRoute(dstOf(s, ctx, `nodes[${n.name}].podCIDRs`), n, ctx);
      }
      const sn = nodeByName(ctx, serviceNodes[c.name]);
      if (sn) {
        for (const s of c.serviceCIDRs) {
          addRoute(dstOf(s, ctx, `clusters[${c.name}].serviceCIDRs`), sn, ctx);
        }
      }
    }
  }
  for (const [cluster, list] of skipped) {
    const shown = list.slice(0, 3).join(", ");
    const more = list.length > 3 ? ` and ${list.length - 3} more` : "";
    warnings.push(
      `cluster ${cluster}: skipped ${list.length} CIDR(s) overlapping local cluster ${selfCluster.name}: ${shown}${more} (map them with globalCIDRs)`,
    );
  }

  // ---- policy rules: one `lookup 200` per family in use
  const rules = selfFams.map((f) => ({
    family: f,
    priority: KOSMOS_RULE_PRIORITY,
    table: KOSMOS_ROUTE_TABLE,
  }));

  // ---- nftables intent
  const deviceNames = devices.map((d) => d.name).sort(cmp);
  const globalMaps: PrefixMap[] = hasBridge
    ? selfCtx.globals
        .filter((g) => selfHas(g.key.family))
        .map((g) => ({ local: g.key.text, global: g.value.text, family: g.key.family }))
    : [];
  const masquerade: NftIntent["masquerade"] = [];
  if (selfIsGateway) {
    // The active gateway of a gateway cluster is the cluster's only door to the bridge overlay:
    // 1. Sources in the local CIDR (node-sourced traffic of non-gateway nodes: src = their vx-local
    //    address) leaving via vx-bridge are masqueraded to this gateway's vx-bridge address. Every
    //    gateway cluster uses the same local prefix, so remote nodes cannot route back to it.
    // 2. Sources in the bridge CIDR (node-sourced traffic of remote nodes: src = their vx-bridge
    //    address) leaving through anything but an overlay device (the underlay NIC or the CNI's
    //    devices, towards pods of this cluster on other nodes) are masqueraded to this gateway's
    //    address there. Non-gateway nodes have no route to the bridge prefix, so without this the
    //    replies would leave through their default route and be lost; masqueraded, they return
    //    to the gateway, are un-NATed by conntrack and leave via vx-bridge. Pod-sourced traffic
    //    needs neither: remote pod CIDRs are routed via the gateway on every node.
    for (const f of selfFams) {
      const localCidr = mustCidr(
        f === 4 ? selfCluster.localCIDRs.ip : selfCluster.localCIDRs.ip6,
        "localCIDRs",
      );
      const bridgeCidr = mustCidr(
        f === 4 ? selfCluster.bridgeCIDRs.ip : selfCluster.bridgeCIDRs.ip6,
        "bridgeCIDRs",
      );
      masquerade.push({ srcCIDRs: [localCidr.text], oif: DEVICES.bridge[f].name, family: f });
      masquerade.push({
        srcCIDRs: [bridgeCidr.text],
        oif: "*",
        family: f,
        exceptOif: deviceNames.filter((d) => devices.some((x) => x.name === d && x.family === f)),
      });
    }
  }

  // ---- IPsec between elastic IPs
  const policies: XfrmPolicy[] = [];
  const states: XfrmState[] = [];
  const selfEip = selfNode.elasticIP;
  if (hasBridge && selfEip !== undefined) {
    const eipFam: AddressFamily = selfEip.includes(":") ? 6 : 4;
    const advertised = (n: Node, ctx: ClusterCtx): Cidr[] =>
      (ctx.cluster.networkType === "gateway" ? ctx.cluster.podCIDRs : n.podCIDRs).map((s) =>
        toGlobal(mustCidr(s, `pod CIDR of ${n.name}`), ctx.globals),
      );
    const localNets = advertised(selfNode, selfCtx).filter((c) => selfHas(c.family));
    let missingSecretWarned = false;
    for (const { node: peer, ctx } of remoteBridgeNodes) {
      const peerEip = peer.elasticIP;
      if (peerEip === undefined || (peerEip.includes(":") ? 6 : 4) !== eipFam) continue;
      const reqid = ipsecReqid(selfName, peer.name);
      const remoteNets = advertised(peer, ctx).filter((c) => !overlapsLocal(c));
      let any = false;
      for (const l of localNets) {
        for (const r of remoteNets) {
          if (l.family !== r.family) continue;
          any = true;
          const base = { reqid, priority: KOSMOS_XFRM_PRIORITY, family: l.family };
          policies.push(
            { ...base, src: l.text, dst: r.text, dir: "out", tmplSrc: selfEip, tmplDst: peerEip },
            { ...base, src: r.text, dst: l.text, dir: "in", tmplSrc: peerEip, tmplDst: selfEip },
            { ...base, src: r.text, dst: l.text, dir: "fwd", tmplSrc: peerEip, tmplDst: selfEip },
          );
        }
      }
      if (!any) continue;
      if (!input.ipsecSecret) {
        if (!missingSecretWarned)
          warnings.push("no ipsecSecret: IPsec policies planned without states (keys)");
        missingSecretWarned = true;
        continue;
      }
      const epoch = input.ipsecEpoch ?? 0;
      const st = { reqid, icvBits: KOSMOS_XFRM_ICV_BITS, family: eipFam };
      states.push(
        {
          ...st,
          src: selfEip,
          dst: peerEip,
          spi: ipsecSpi(selfName, peer.name, epoch),
          aeadKeyHex: ipsecKey(input.ipsecSecret, selfName, peer.name, epoch),
        },
        {
          ...st,
          src: peerEip,
          dst: selfEip,
          spi: ipsecSpi(peer.name, selfName, epoch),
          aeadKeyHex: ipsecKey(input.ipsecSecret, peer.name, selfName, epoch),
        },
      );
    }
  }

  // ---- sysctls
  // Forwarding on; reverse-path filtering off on overlay devices (asymmetric paths through
  // gateways). Note: the kernel uses max(all, dev) for rp_filter; Debian's default is loose (2).
  const sysctls: Sysctl[] = [];
  if (selfHas(4)) sysctls.push({ key: "net.ipv4.ip_forward", value: "1" });
  if (selfHas(6)) sysctls.push({ key: "net.ipv6.conf.all.forwarding", value: "1" });
  for (const d of devices)
    if (d.family === 4) sysctls.push({ key: `net.ipv4.conf.${d.name}.rp_filter`, value: "0" });

  // ---- deterministic order (IPv4 addresses and CIDRs in numeric order, IPv6 in text order)
  devices.sort((a, b) => cmp(a.name, b.name));
  routes.sort((a, b) => a.r.family - b.r.family || a.k - b.k || cmp(a.r.dst, b.r.dst));
  const sortedRoutes = routes.map((x) => x.r);
  const v4: string[] = [];
  const v6: string[] = [];
  for (const r of sortedRoutes) (r.family === 4 ? v4 : v6).push(r.dst);
  const fdb: FdbEntry[] = [];
  const neighbors: Neighbor[] = [];
  for (const dev of [...peerRecs.keys()].sort(cmp)) {
    const { family, recs } = peerRecs.get(dev) as { family: AddressFamily; recs: PeerRec[] };
    const v4 = family === 4;
    recs.sort((a, b) => (v4 ? a.dstN - b.dstN : cmp(a.dst, b.dst)) || cmp(a.mac, b.mac));
    for (const p of recs) fdb.push({ dev, mac: ZERO_MAC, dst: p.dst }, { dev, mac: p.mac, dst: p.dst });
    recs.sort((a, b) => (v4 ? a.ipN - b.ipN : cmp(a.ip, b.ip)) || cmp(a.mac, b.mac));
    for (const p of recs) neighbors.push({ dev, ip: p.ip, mac: p.mac, family });
  }
  globalMaps.sort((a, b) => a.family - b.family || cmp(a.local, b.local));
  masquerade.sort((a, b) => a.family - b.family || cmp(a.oif, b.oif));
  policies.sort(
    (a, b) => cmp(a.src, b.src) || cmp(a.dst, b.dst) || cmp(a.dir, b.dir) || cmp(a.tmplDst, b.tmplDst),
  );
  states.sort((a, b) => cmp(a.src, b.src) || cmp(a.dst, b.dst) || a.spi - b.spi);
  sysctls.sort((a, b) => cmp(a.key, b.key));
  warnings.sort(cmp);

  const out: HostState = {
    node: selfName,
    cluster: selfCluster.name,
    table: KOSMOS_ROUTE_TABLE,
    devices,
    routes: sortedRoutes,
    rules,
    fdb,
    neighbors,
    nft: {
      overlayDevices: deviceNames,
      mssClampDevices: [...deviceNames],
      globalMaps,
      masquerade,
      noMasqueradeDst: { v4, v6 },
    },
    xfrm: { policies, states },
    sysctls,
    gateways,
    serviceNodes,
    warnings,
  };
  return out;
}
