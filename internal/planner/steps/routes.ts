/**
 * Routes (table 200) to every remote cluster's CIDRs, and the policy rules that look that table up.
 * A remote CIDR overlapping the local cluster's is skipped with a warning (globalCIDRs exist for
 * that); a destination routed twice keeps its first route.
 */
import {
  KOSMOS_ROUTE_TABLE,
  KOSMOS_RULE_PRIORITY,
  type PolicyRule,
  type Route,
} from "../../dataplane/index.ts";
import type { AddressFamily, Cidr, Node } from "../../topology/index.ts";
import { type ClusterCtx, type Dst, dstOf, mustCidr, underlayOf } from "../cluster.ts";
import { nodeByName, type PlanContext, selfHas } from "../context.ts";
import { isAlive } from "../election.ts";
import { DEVICES } from "./devices.ts";

/** The local cluster's pod and service CIDRs (remote CIDRs overlapping them are not routed). */
export interface LocalRanges {
  all: Cidr[];
  /** IPv4 ones as plain numbers (hot path). */
  v4: Array<{ lo: number; hi: number; text: string }>;
}

export function localRangesOf(ctx: PlanContext): LocalRanges {
  const c = ctx.selfCtx.cluster;
  const all = [...c.podCIDRs, ...c.serviceCIDRs].map((s) =>
    mustCidr(s, `clusters[${c.name}] pod/service CIDR`),
  );
  const v4 = all
    .filter((l) => l.family === 4)
    .map((l) => ({ lo: Number(l.base), hi: Number(l.last), text: l.text }));
  return { all, v4 };
}

export function overlapsLocal(local: LocalRanges, c: Cidr): Cidr | undefined {
  for (const l of local.all) if (l.family === c.family && l.base <= c.last && c.base <= l.last) return l;
  return undefined;
}

function dstOverlapsLocal(local: LocalRanges, d: Dst): string | undefined {
  if (d.c) return overlapsLocal(local, d.c)?.text;
  for (const l of local.v4) if (l.lo <= d.hi && d.lo <= l.hi) return l.text;
  return undefined;
}

/** A route with its sort key (IPv4: numeric destination and length; the order step sorts). */
export interface RouteRec {
  k: number;
  r: Route;
}

interface RouteState {
  ctx: PlanContext;
  local: LocalRanges;
  bridgeIp: Record<AddressFamily, Map<Node, string>>;
  /** Non-gateway node of a gateway cluster: its gateway's vx-local address per family. */
  gatewayLocalIp: Partial<Record<AddressFamily, string>>;
  routes: RouteRec[];
  routed: Set<string>;
  /** Remote CIDRs skipped for overlapping a local one, per remote cluster. */
  skipped: Map<string, string[]>;
  noGatewayWarned: boolean;
}

export function planRoutes(
  ctx: PlanContext,
  bridgeIp: Record<AddressFamily, Map<Node, string>>,
  local: LocalRanges,
): RouteRec[] {
  const st: RouteState = {
    ctx,
    local,
    bridgeIp,
    gatewayLocalIp: gatewayLocalIp(ctx),
    routes: [],
    routed: new Set(),
    skipped: new Map(),
    noGatewayWarned: false,
  };
  for (const c of ctx.clusters.values()) {
    if (c.cluster.name !== ctx.selfCtx.cluster.name) routeCluster(st, c);
  }
  for (const [cluster, list] of st.skipped) {
    const shown = list.slice(0, 3).join(", ");
    const more = list.length > 3 ? ` and ${list.length - 3} more` : "";
    ctx.warnings.push(
      `cluster ${cluster}: skipped ${list.length} CIDR(s) overlapping local cluster ${ctx.selfCtx.cluster.name}: ${shown}${more} (map them with globalCIDRs)`,
    );
  }
  return st.routes;
}

/** One `lookup 200` rule per family in use. */
export function planRules(ctx: PlanContext): PolicyRule[] {
  return ctx.fams.map((f) => ({ family: f, priority: KOSMOS_RULE_PRIORITY, table: KOSMOS_ROUTE_TABLE }));
}

function gatewayLocalIp(ctx: PlanContext): Partial<Record<AddressFamily, string>> {
  const out: Partial<Record<AddressFamily, string>> = {};
  const gw = ctx.selfGateway;
  if (gw && !ctx.selfIsGateway) {
    for (const f of ctx.fams) {
      const u = underlayOf(gw, f);
      const ip = u === undefined ? undefined : ctx.selfCtx.local[f]?.ip(u);
      if (ip !== undefined) out[f] = ip;
    }
  }
  return out;
}

/**
 * A gateway cluster: its pod and service CIDRs via its active gateway. A P2P cluster: each alive
 * node's pod CIDRs via that node, the service CIDRs via the cluster's service node.
 */
function routeCluster(st: RouteState, c: ClusterCtx): void {
  const { cluster, nodes } = c;
  if (cluster.networkType === "gateway") {
    const gw = nodeByName(c, st.ctx.gateways[cluster.name]);
    if (!gw) {
      if (nodes.length > 0) st.ctx.warnings.push(`cluster ${cluster.name} has no alive gateway: unreachable`);
      return;
    }
    for (const s of cluster.podCIDRs) addRoute(st, dstOf(s, c, `clusters[${cluster.name}].podCIDRs`), gw, c);
    for (const s of cluster.serviceCIDRs) {
      addRoute(st, dstOf(s, c, `clusters[${cluster.name}].serviceCIDRs`), gw, c);
    }
    return;
  }
  for (const n of nodes) {
    if (!isAlive(st.ctx.members, n.name)) continue;
    for (const s of n.podCIDRs) addRoute(st, dstOf(s, c, `nodes[${n.name}].podCIDRs`), n, c);
  }
  const sn = nodeByName(c, st.ctx.serviceNodes[cluster.name]);
  if (sn) {
    for (const s of cluster.serviceCIDRs) {
      addRoute(st, dstOf(s, c, `clusters[${cluster.name}].serviceCIDRs`), sn, c);
    }
  }
}

/** Route `dst` towards `target` (a node of cluster `c`), unless it is skipped or a duplicate. */
function addRoute(st: RouteState, dst: Dst, target: Node, c: ClusterCtx): void {
  const { ctx } = st;
  const f = dst.family;
  if (!selfHas(ctx, f)) return;
  const clash = dstOverlapsLocal(st.local, dst);
  if (clash) {
    const list = st.skipped.get(c.cluster.name) ?? [];
    list.push(`${dst.text} (overlaps ${clash})`);
    st.skipped.set(c.cluster.name, list);
    return;
  }
  let via: string | undefined;
  let dev: string;
  if (ctx.hasBridge) {
    via = st.bridgeIp[f].get(target);
    dev = DEVICES.bridge[f].name;
  } else {
    via = st.gatewayLocalIp[f];
    dev = DEVICES.local[f].name;
    if (via === undefined) {
      if (!st.noGatewayWarned)
        ctx.warnings.push(`cluster ${ctx.selfCtx.cluster.name} has no alive gateway: no remote routes`);
      st.noGatewayWarned = true;
      return;
    }
    // The gateway itself must be able to reach the target over this family.
    const tu = underlayOf(target, f);
    if (tu === undefined || !c.fams.includes(f)) return;
  }
  if (via === undefined) {
    // Target not a peer on this family (e.g. it lacks the underlay address).
    const tu = underlayOf(target, f);
    const ip = tu === undefined ? undefined : c.bridge[f]?.ip(tu);
    if (ip === undefined) return;
    via = ip;
  }
  if (st.routed.has(dst.text)) {
    ctx.warnings.push(
      `duplicate destination ${dst.text} (cluster ${c.cluster.name}, node ${target.name}) ignored`,
    );
    return;
  }
  st.routed.add(dst.text);
  st.routes.push({
    k: f === 4 ? dst.lo * 64 + dst.len : 0,
    r: {
      dst: dst.text,
      via,
      dev,
      family: f,
      table: KOSMOS_ROUTE_TABLE,
      peer: `${c.cluster.name}/${target.name}`,
    },
  });
}
