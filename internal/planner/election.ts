/**
 * Gateway and service-node election, computed identically on every agent from the replica.
 * Rule: keep the previous choice while it is still eligible and alive (sticky, avoids flapping),
 * otherwise the lowest-named eligible alive node. `suspect` counts as alive; `dead`/`left` do not.
 */
import type { MemberState, Topology } from "../topology/index.ts";

export function isAlive(members: Record<string, MemberState> | undefined, node: string): boolean {
  const s = members?.[node];
  return s !== "dead" && s !== "left";
}

function sortedRecord(m: Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [...m.keys()].sort()) out[k] = m.get(k) as string;
  return out;
}

/** Active gateway per gateway-mode cluster (clusters without an alive candidate are absent). */
export function electGateways(
  topology: Topology,
  members?: Record<string, MemberState>,
  previous?: Record<string, string>,
  claims?: ReadonlyArray<{ node: string; cluster: string; since: number }>,
): Record<string, string> {
  const gatewayClusters = new Set(
    topology.clusters.filter((c) => c.networkType === "gateway").map((c) => c.name),
  );
  const best = new Map<string, string>();
  const sticky = new Map<string, string>();
  for (const n of topology.nodes) {
    if (!n.gatewayCandidate || !gatewayClusters.has(n.cluster) || !isAlive(members, n.name)) continue;
    if (previous?.[n.cluster] === n.name) sticky.set(n.cluster, n.name);
    const b = best.get(n.cluster);
    if (b === undefined || n.name < b) best.set(n.cluster, n.name);
  }
  for (const [c, n] of sticky) best.set(c, n);
  // A published claim (the gateway says so in its own replicated status) beats local stickiness:
  // every agent sees the same claims, so a freshly started agent agrees with the fleet.
  if (claims && claims.length > 0) {
    const candidates = new Set(
      topology.nodes
        .filter((n) => n.gatewayCandidate && gatewayClusters.has(n.cluster) && isAlive(members, n.name))
        .map((n) => `${n.cluster}\0${n.name}`),
    );
    const claimed = new Map<string, { node: string; since: number }>();
    for (const c of claims) {
      if (!candidates.has(`${c.cluster}\0${c.node}`)) continue;
      const cur = claimed.get(c.cluster);
      if (!cur || c.since > cur.since || (c.since === cur.since && c.node < cur.node)) claimed.set(c.cluster, c);
    }
    for (const [c, v] of claimed) best.set(c, v.node);
  }
  return sortedRecord(best);
}

/**
 * Service node per P2P cluster: the node remote clusters route the cluster's service CIDRs to.
 * Same rule as gateways, among the alive gatewayCandidate nodes if there are any, else among all
 * alive nodes of the cluster.
 */
export function electServiceNodes(
  topology: Topology,
  members?: Record<string, MemberState>,
  previous?: Record<string, string>,
): Record<string, string> {
  const p2p = new Set(topology.clusters.filter((c) => c.networkType === "p2p").map((c) => c.name));
  const bestCand = new Map<string, string>();
  const bestAny = new Map<string, string>();
  const stickyCand = new Map<string, string>();
  const stickyAny = new Map<string, string>();
  for (const n of topology.nodes) {
    if (!p2p.has(n.cluster) || !isAlive(members, n.name)) continue;
    const prev = previous?.[n.cluster] === n.name;
    if (prev) stickyAny.set(n.cluster, n.name);
    const a = bestAny.get(n.cluster);
    if (a === undefined || n.name < a) bestAny.set(n.cluster, n.name);
    if (n.gatewayCandidate) {
      if (prev) stickyCand.set(n.cluster, n.name);
      const b = bestCand.get(n.cluster);
      if (b === undefined || n.name < b) bestCand.set(n.cluster, n.name);
    }
  }
  const out = new Map<string, string>();
  for (const [c, any] of bestAny) {
    out.set(
      c,
      bestCand.has(c) ? (stickyCand.get(c) ?? (bestCand.get(c) as string)) : (stickyAny.get(c) ?? any),
    );
  }
  return sortedRecord(out);
}
