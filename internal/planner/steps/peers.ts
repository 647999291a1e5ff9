/**
 * Peers: the remote VTEPs this node talks to on each device (static FDB + permanent neighbours,
 * emitted sorted by the order step), and each bridge peer's overlay address (the routes' next hop).
 */
import { type AddressFamily, type Node, parseIPv4Number } from "../../topology/index.ts";
import { type ClusterCtx, canonicalUnderlay, underlayOf } from "../cluster.ts";
import { nodeByName, type PlanContext } from "../context.ts";
import { isAlive } from "../election.ts";
import { vtepMac } from "../mac.ts";
import { DEVICES } from "./devices.ts";

export interface PeerRec {
  dst: string;
  ip: string;
  mac: string;
  /** IPv4: numeric underlay and overlay addresses (sort keys). */
  dstN: number;
  ipN: number;
}

export interface PeerGroup {
  family: AddressFamily;
  recs: PeerRec[];
}

export interface RemoteBridgeNode {
  node: Node;
  ctx: ClusterCtx;
}

export interface Peers {
  /** Peer VTEPs per device name, in insertion order (the order step sorts them). */
  byDevice: Map<string, PeerGroup>;
  /** Bridge overlay IP per peer node, per family. */
  bridgeIp: Record<AddressFamily, Map<Node, string>>;
  /** vx-bridge nodes of every other cluster: alive nodes of P2P clusters, active gateways. */
  remoteBridge: RemoteBridgeNode[];
}

export function planPeers(ctx: PlanContext): Peers {
  const peers: Peers = {
    byDevice: new Map(),
    bridgeIp: { 4: new Map(), 6: new Map() },
    remoteBridge: remoteBridgeNodes(ctx),
  };
  if (ctx.hasBridge)
    for (const { node, ctx: c } of peers.remoteBridge) addPeer(ctx, peers, "bridge", node, c);
  if (ctx.isGatewayCluster) {
    const { selfCtx } = ctx;
    if (ctx.selfIsGateway) {
      for (const n of selfCtx.nodes)
        if (n.name !== ctx.selfName && isAlive(ctx.members, n.name)) addPeer(ctx, peers, "local", n, selfCtx);
    } else if (ctx.selfGateway) {
      addPeer(ctx, peers, "local", ctx.selfGateway, selfCtx);
    }
  }
  return peers;
}

function remoteBridgeNodes(ctx: PlanContext): RemoteBridgeNode[] {
  const out: RemoteBridgeNode[] = [];
  for (const c of ctx.clusters.values()) {
    if (c.cluster.name === ctx.selfCtx.cluster.name) continue;
    if (c.cluster.networkType === "gateway") {
      const gw = nodeByName(c, ctx.gateways[c.cluster.name]);
      if (gw) out.push({ node: gw, ctx: c });
    } else {
      for (const n of c.nodes) if (isAlive(ctx.members, n.name)) out.push({ node: n, ctx: c });
    }
  }
  return out;
}

/** Record `peer` (of cluster `c`) as a VTEP on this node's `kind` device of every common family. */
function addPeer(ctx: PlanContext, peers: Peers, kind: "bridge" | "local", peer: Node, c: ClusterCtx): void {
  for (const f of ctx.fams) {
    if (!c.fams.includes(f)) continue;
    const u = underlayOf(peer, f);
    const mapper = (kind === "bridge" ? c.bridge : c.local)[f];
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
    let group = peers.byDevice.get(dev);
    if (!group) {
      group = { family: f, recs: [] };
      peers.byDevice.set(dev, group);
    }
    const ipN = f === 4 ? (parseIPv4Number(ip) as number) : 0;
    group.recs.push({ dst, ip, mac: vtepMac(peer.name, dev), dstN, ipN });
    if (kind === "bridge") peers.bridgeIp[f].set(peer, ip);
  }
}
