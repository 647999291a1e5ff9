/**
 * Diagnosis of a failed pair (pure): from the agents' plans and states and the nodes' live kernels,
 * name the hop that is broken when it can be known — the source agent, a missing Kosmos route or
 * one the kernel routes differently, the tunnel peer (neighbour/FDB), the gateway, the MTU — and the
 * node it is on. Findings are ordered from the most specific (on the forward path) to context.
 */
import type { HostState, Route } from "../dataplane/index.ts";
import { canonicalCidr, cidrContains, parseCidr } from "../topology/index.ts";
import type { KernelRoute, NodeFacts } from "./facts.ts";
import type { ClusterInfo, Finding, Pair, PairResult } from "./types.ts";

/** VXLAN encapsulation overhead by underlay family (outer IP + UDP + VXLAN + inner Ethernet). */
const VXLAN_OVERHEAD: Record<4 | 6, number> = { 4: 50, 6: 70 };

export function routeText(r: Pick<Route, "dst" | "via" | "dev" | "table">): string {
  return `${r.dst} via ${r.via} dev ${r.dev} table ${r.table}`;
}

function kernelRouteText(r: KernelRoute | undefined, withDst = true): string {
  if (!r) return "no route";
  return `${withDst ? r.dst : ""}${r.gateway ? ` via ${r.gateway}` : ""}${r.dev ? ` dev ${r.dev}` : ""}${r.table ? ` table ${r.table}` : " (main table)"}`;
}

function normDst(dst: string, family: 4 | 6): string {
  if (dst === "default") return family === 4 ? "0.0.0.0/0" : "::/0";
  try {
    return canonicalCidr(dst.includes("/") ? dst : `${dst}/${family === 4 ? 32 : 128}`);
  } catch {
    return dst;
  }
}

/** Longest-prefix match among the plan's routes. */
export function planRouteFor(plan: HostState, ip: string): Route | undefined {
  let best: Route | undefined;
  let bestLen = -1;
  for (const r of plan.routes) {
    try {
      if (!cidrContains(r.dst, ip)) continue;
      const len = parseCidr(r.dst).len;
      if (len > bestLen) {
        best = r;
        bestLen = len;
      }
    } catch {
      /* unparsable: ignore */
    }
  }
  return best;
}

function kernelHas(facts: NodeFacts, r: Route): "ok" | "missing" | KernelRoute {
  const k = facts.kernel?.routes.find((x) => normDst(x.dst, r.family) === canonicalCidr(r.dst));
  if (!k) return "missing";
  if (k.gateway !== r.via || k.dev !== r.dev) return k;
  return "ok";
}

/** Plan objects missing from (or different in) the node's kernel. */
export function drift(facts: NodeFacts): Finding[] {
  const out: Finding[] = [];
  const plan = facts.plan;
  const k = facts.kernel;
  if (!plan || !k) return out;
  for (const r of plan.routes) {
    const got = kernelHas(facts, r);
    if (got === "missing") {
      out.push({
        hop: "route",
        node: facts.node,
        route: routeText(r),
        message: `${facts.node}: planned route ${routeText(r)} is missing from the kernel`,
      });
    } else if (got !== "ok") {
      out.push({
        hop: "route",
        node: facts.node,
        route: routeText(r),
        message: `${facts.node}: kernel has ${kernelRouteText({ ...got, table: String(r.table) })}, the plan says ${routeText(r)}`,
      });
    }
  }
  for (const n of plan.neighbors) {
    const got = k.neighbors.find((x) => x.dst === n.ip && x.dev === n.dev);
    if (!got || got.lladdr?.toLowerCase() !== n.mac) {
      out.push({
        hop: "neighbor",
        node: facts.node,
        route: `neigh ${n.ip} lladdr ${n.mac} dev ${n.dev}`,
        message: `${facts.node}: tunnel peer neighbour ${n.ip} lladdr ${n.mac} dev ${n.dev} is ${got ? `wrong (${got.lladdr ?? "no lladdr"})` : "missing"}`,
      });
    }
  }
  for (const f of plan.fdb) {
    const got = k.fdb.find((x) => x.mac === f.mac && x.ifname === f.dev && x.dst === f.dst);
    if (!got) {
      out.push({
        hop: "fdb",
        node: facts.node,
        route: `fdb ${f.mac} dev ${f.dev} dst ${f.dst}`,
        message: `${facts.node}: tunnel peer FDB entry ${f.mac} dev ${f.dev} dst ${f.dst} is missing`,
      });
    }
  }
  return out;
}

/** Overlay devices whose MTU does not fit their underlay link (encapsulated packets get dropped). */
export function mtuMismatches(facts: NodeFacts): Finding[] {
  const out: Finding[] = [];
  if (!facts.plan || !facts.kernel) return out;
  for (const d of facts.plan.devices) {
    const parent = d.parent ?? "eth0";
    const link = facts.kernel.links.find((l) => l.ifname === parent);
    const need = d.mtu + VXLAN_OVERHEAD[d.family];
    if (link && link.mtu < need) {
      out.push({
        hop: "mtu",
        node: facts.node,
        route: `${d.name} mtu ${d.mtu} over ${parent} mtu ${link.mtu}`,
        message: `${facts.node}: overlay ${d.name} has MTU ${d.mtu}, which needs underlay MTU ≥ ${need}, but ${parent} has ${link.mtu}: full-size tunnel packets to this node are dropped`,
      });
    }
  }
  return out;
}

export interface DiagnoseContext {
  clusters: Map<string, ClusterInfo>;
  facts: Map<string, NodeFacts>;
  /** For failed sized icmp probes, keyed by target IP: did a small ping (no DF size) pass? */
  smallOk?: Record<string, boolean>;
}

function dedupe(fs: Finding[]): Finding[] {
  const seen = new Set<string>();
  return fs.filter((f) => {
    const k = `${f.hop}|${f.node}|${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export function diagnose(pair: Pair, result: PairResult, ctx: DiagnoseContext): Finding[] {
  const out: Finding[] = [];
  const failed = result.probes.filter((p) => !p.ok);
  if (failed.length === 0) return out;
  const srcNode = pair.src.node;
  const dstNode = pair.dst.node;
  const sf = ctx.facts.get(srcNode);
  const df = ctx.facts.get(dstNode);
  if (!sf || sf.agentError) {
    out.push({ hop: "agent", node: srcNode, message: sf?.agentError ?? `no facts from ${srcNode}` });
    return out;
  }
  out.push(...mtuFindings(pair, failed, sf, ctx));
  const involved = new Set<string>([srcNode, dstNode]);
  if (pair.cross) out.push(...crossClusterFindings(pair, failed, sf, ctx, involved));
  else if (sf.kernel) {
    const ip = failed[0]?.ip ?? "";
    out.push({
      hop: "cni",
      node: srcNode,
      message: `same-cluster pair: carried by the cluster network (CNI), not Kosmos; ${srcNode} routes ${ip}${kernelRouteText(sf.kernel.routeGet[ip], false)}`,
    });
  }
  out.push(...targetFindings(pair, result, failed, df));
  // Everything else wrong on the nodes of the path (reverse path, gateways, MTU of the links).
  for (const n of involved) {
    const f = ctx.facts.get(n);
    if (!f) continue;
    if (n !== srcNode && f.plan && !f.agentError) out.push(...drift(f));
    out.push(...mtuMismatches(f));
  }
  if (out.length === 0) {
    out.push({
      message:
        "no broken hop found in the agents' plans and the nodes' kernels: the loss is beyond the nodes (underlay, firewall), transient, or repaired since the probe (agents resync): re-run with --resume",
      hop: "target",
    });
  }
  return dedupe(out);
}

type Probe = PairResult["probes"][number];
type Plan = NonNullable<NodeFacts["plan"]>;

/** MTU: refused by a hop (ICMP too big / local error) or silently lost while small packets pass. */
function mtuFindings(pair: Pair, failed: Probe[], sf: NodeFacts, ctx: DiagnoseContext): Finding[] {
  const out: Finding[] = [];
  const srcNode = pair.src.node;
  const dstNode = pair.dst.node;
  for (const p of failed) {
    if (p.proto !== "icmp" || !p.size) continue;
    const m = /mtu\s*=\s*(\d+)/i.exec(p.detail);
    if (m) {
      const dev = sf.kernel?.routeGet[p.ip]?.dev;
      const devMtu = sf.kernel?.links.find((l) => l.ifname === dev)?.mtu;
      out.push({
        hop: "mtu",
        node: srcNode,
        route: dev ? `dev ${dev} mtu ${devMtu ?? "?"}` : undefined,
        message: `${p.size}-byte packets to ${p.ip} exceed the path MTU ${m[1]}${dev ? ` (${srcNode} routes it via ${dev}, MTU ${devMtu ?? "?"})` : ""}; with don't-fragment they cannot pass`,
      });
    } else if (ctx.smallOk?.[p.ip]) {
      out.push({
        hop: "mtu",
        node: dstNode,
        message: `MTU black hole: ${p.size}-byte packets with don't-fragment from ${srcNode} to ${p.ip} are lost silently while small packets pass`,
      });
    }
  }
  return out;
}

/**
 * A cross-cluster pair: the source's plan, its routes and tunnel peers to the failed IPs, and the
 * gateways on the way. Adds the gateways to `involved`.
 */
function crossClusterFindings(
  pair: Pair,
  failed: Probe[],
  sf: NodeFacts,
  ctx: DiagnoseContext,
  involved: Set<string>,
): Finding[] {
  const srcNode = pair.src.node;
  const plan = sf.plan;
  if (!plan) return [{ hop: "plan", node: srcNode, message: sf.planMissing ?? `${srcNode} has no plan` }];
  const out: Finding[] = [];
  const dc = ctx.clusters.get(pair.dst.cluster);
  const sc = ctx.clusters.get(pair.src.cluster);
  if (dc?.networkType === "gateway" && plan.gateways[pair.dst.cluster])
    involved.add(plan.gateways[pair.dst.cluster] as string);
  if (sc?.networkType === "gateway" && plan.gateways[pair.src.cluster])
    involved.add(plan.gateways[pair.src.cluster] as string);
  for (const ip of [...new Set(failed.map((p) => p.ip))])
    out.push(...forwardPathFindings(pair, plan, sf, ip));
  out.push(...gatewayFindings(pair, plan, sf, ctx));
  return out;
}

/** The source's Kosmos route to `ip`: in the plan, in the kernel, and its tunnel peer (neighbour, FDB). */
function forwardPathFindings(pair: Pair, plan: Plan, sf: NodeFacts, ip: string): Finding[] {
  const out: Finding[] = [];
  const srcNode = pair.src.node;
  const r = planRouteFor(plan, ip);
  if (!r) {
    out.push({
      hop: "plan",
      node: srcNode,
      message: `${srcNode}'s plan has no Kosmos route to ${ip}: is ${pair.dst.cluster}'s CIDR in the topology (or skipped: ${plan.warnings.join("; ") || "no warning"})?`,
    });
    return out;
  }
  const got = kernelHas(sf, r);
  const live = sf.kernel?.routeGet[ip];
  if (got === "missing") {
    out.push({
      hop: "route",
      node: srcNode,
      route: routeText(r),
      message: `${srcNode}: route ${routeText(r)} is in the agent's plan but missing from the kernel; the kernel routes ${ip}${kernelRouteText(live, false)}`,
    });
  } else if (got !== "ok") {
    out.push({
      hop: "route",
      node: srcNode,
      route: routeText(r),
      message: `${srcNode}: kernel route ${kernelRouteText({ ...got, table: String(r.table) })} differs from the plan's ${routeText(r)}`,
    });
  }
  const n = plan.neighbors.find((x) => x.ip === r.via && x.dev === r.dev);
  if (n) {
    const kn = sf.kernel?.neighbors.find((x) => x.dst === n.ip && x.dev === n.dev);
    if (!kn || kn.lladdr?.toLowerCase() !== n.mac) {
      out.push({
        hop: "neighbor",
        node: srcNode,
        route: `neigh ${n.ip} lladdr ${n.mac} dev ${n.dev}`,
        message: `${srcNode}: tunnel peer ${r.peer ?? r.via} unknown to the kernel (neighbour ${n.ip} lladdr ${n.mac} dev ${n.dev} ${kn ? `has ${kn.lladdr}` : "missing"})`,
      });
    }
    const f = plan.fdb.find((x) => x.dev === n.dev && x.mac === n.mac);
    if (f && !sf.kernel?.fdb.some((x) => x.mac === f.mac && x.ifname === f.dev && x.dst === f.dst)) {
      out.push({
        hop: "fdb",
        node: srcNode,
        route: `fdb ${f.mac} dev ${f.dev} dst ${f.dst}`,
        message: `${srcNode}: tunnel peer ${r.peer ?? r.via} missing from the VXLAN FDB (${f.mac} dev ${f.dev} dst ${f.dst})`,
      });
    }
  }
  return out;
}

/** Gateways on the way: elected, alive, answering. */
function gatewayFindings(pair: Pair, plan: Plan, sf: NodeFacts, ctx: DiagnoseContext): Finding[] {
  const out: Finding[] = [];
  const srcNode = pair.src.node;
  for (const c of [pair.src.cluster, pair.dst.cluster]) {
    if (ctx.clusters.get(c)?.networkType !== "gateway") continue;
    const gw = plan.gateways[c];
    if (!gw) {
      out.push({
        hop: "gateway",
        node: srcNode,
        message: `${srcNode} sees no elected gateway for gateway-mode cluster ${c}`,
      });
      continue;
    }
    const member = sf.state?.members?.[gw];
    const gf = ctx.facts.get(gw);
    if (gw !== srcNode && member && member !== "alive") {
      out.push({
        hop: "gateway",
        node: gw,
        message: `gateway ${gw} of cluster ${c} is ${member} in ${srcNode}'s view`,
      });
    }
    if (gf?.agentError)
      out.push({ hop: "gateway", node: gw, message: `gateway ${gw} of cluster ${c}: ${gf.agentError}` });
  }
  return out;
}

/** The target side: its agent, and a port that refuses TCP while ping passes. */
function targetFindings(
  pair: Pair,
  result: PairResult,
  failed: Probe[],
  df: NodeFacts | undefined,
): Finding[] {
  const out: Finding[] = [];
  const srcNode = pair.src.node;
  const dstNode = pair.dst.node;
  if (df?.agentError && dstNode !== srcNode) {
    out.push({ hop: "target", node: dstNode, message: `target node ${dstNode}: ${df.agentError}` });
  }
  const icmpOk = result.probes.some((p) => p.proto === "icmp" && p.ok && !p.size);
  for (const p of failed) {
    if (p.proto === "tcp" && icmpOk && /refused/i.test(p.detail)) {
      out.push({
        hop: "target",
        node: dstNode,
        message: `${p.ip} answers ping but refuses TCP ${p.port}: nothing listens there`,
      });
    }
  }
  return out;
}
