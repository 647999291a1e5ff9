/**
 * The membership views the agent plans with, computed from gossip's member list (pure), and the
 * direct push of latency-critical rows. Used by gossip.ts; tested in test/unit/agent-membership.
 */
import type { GossipNode, MemberInfo, Reach } from "../gossip/index.ts";
import type { ReplicatedRow, Store } from "../store/index.ts";
import type { MemberState, Node, Topology } from "../topology/index.ts";

export const GOSSIP_PATH = "/v1/gossip";

/** https://host:port (an agent URL) -> wss://host:port/v1/gossip. */
export function gossipAddr(agentUrl: string): string {
  const u = new URL(agentUrl);
  const scheme = u.protocol === "http:" || u.protocol === "ws:" ? "ws:" : "wss:";
  return `${scheme}//${u.host}${GOSSIP_PATH}`;
}

function formatHost(ip: string): string {
  return ip.includes(":") ? `[${ip}]` : ip;
}

/**
 * Where a topology node's agent gossips: the endpoint it published (node_status), else its node IP
 * on this agent's port. undefined: no address known.
 */
export function memberAddr(store: Store, n: Node, port: string): string | undefined {
  const status = store.get("node_status", n.name)?.data as { endpoint?: string } | undefined;
  const ip = n.ipv4 ?? n.ipv6;
  const url = status?.endpoint ?? (ip ? `https://${formatHost(ip)}:${port}` : undefined);
  return url ? gossipAddr(url) : undefined;
}

/**
 * How gossip membership follows the replica's topology (pure). Topology nodes that are not members
 * are added (unconfirmed, with their address, as at start: a node added, or added back after it was
 * forgotten). Members that are not topology nodes are forgotten once they are not alive: dead, left,
 * or never heard from (unconfirmed). A removed node whose agent still runs (alive or suspect) stays
 * a member until it is declared dead or leaves — its process is not dead because the controller
 * removed its row, and nothing plans it anyway (planning uses the topology). A topology without any
 * node (a replica not seeded yet, or being rebuilt from peers) changes nothing.
 */
export function membershipChanges(
  topology: readonly string[],
  members: readonly MemberInfo[],
  self: string,
  addrOf: (name: string) => string | undefined,
): { add: Array<{ name: string; addr: string }>; forget: string[] } {
  if (topology.length === 0) return { add: [], forget: [] };
  const inTopology = new Set(topology);
  const isMember = new Set(members.map((m) => m.name));
  const add: Array<{ name: string; addr: string }> = [];
  for (const name of topology) {
    if (name === self || isMember.has(name)) continue;
    const addr = addrOf(name);
    if (addr) add.push({ name, addr });
  }
  const forget = members
    .filter((m) => !inTopology.has(m.name) && (!m.confirmed || m.state === "dead" || m.state === "left"))
    .map((m) => m.name);
  return { add, forget };
}

/**
 * Which agents can reach which directly, from the topology (GossipNode.setReach). The nodes of a
 * gateway-mode cluster that are not gateway candidates reach only their own cluster (their traffic
 * to other clusters goes through the gateway: the reason for gateway mode); every other node reaches
 * every node that crosses. A gateway cluster with no candidate flagged counts all its nodes as
 * candidates (the controller does the same). A node not in the topology reaches everyone.
 * `reachers` counts the topology nodes that reach a node (it weights the gossip targets).
 */
export function topologyReach(t: Pick<Topology, "clusters" | "nodes">): Reach {
  const gatewayClusters = new Set(t.clusters.filter((c) => c.networkType === "gateway").map((c) => c.name));
  const flagged = new Set(t.nodes.filter((n) => n.gatewayCandidate).map((n) => n.cluster));
  const cluster = new Map<string, string>();
  const lanOnly = new Set<string>();
  const size = new Map<string, number>();
  const lanOnlyIn = new Map<string, number>();
  for (const n of t.nodes) {
    cluster.set(n.name, n.cluster);
    size.set(n.cluster, (size.get(n.cluster) ?? 0) + 1);
    if (gatewayClusters.has(n.cluster) && flagged.has(n.cluster) && !n.gatewayCandidate) {
      lanOnly.add(n.name);
      lanOnlyIn.set(n.cluster, (lanOnlyIn.get(n.cluster) ?? 0) + 1);
    }
  }
  const reach: Reach = (a, b) => {
    const ca = cluster.get(a);
    const cb = cluster.get(b);
    if (ca === undefined || cb === undefined || ca === cb) return true;
    return !lanOnly.has(a) && !lanOnly.has(b);
  };
  // how many topology nodes reach a node: a LAN-only node, its own cluster; any other, every node
  // but the LAN-only nodes of the other clusters
  reach.reachers = (name) => {
    const c = cluster.get(name);
    if (c === undefined) return t.nodes.length;
    if (lanOnly.has(name)) return (size.get(c) ?? 1) - 1;
    return t.nodes.length - 1 - (lanOnly.size - (lanOnlyIn.get(c) ?? 0));
  };
  return reach;
}

/**
 * The membership the planner acts on. An agent that hears from no peer at all cannot tell "every
 * other node died" from "I am cut off" or "every agent process stopped while the kernels keep
 * forwarding": withdrawing every route then would break a dataplane that may still work. So while
 * no peer is alive, dead peers are planned as suspect (kept); `left` is always honoured.
 */
export function planningMembers(members: Record<string, MemberState>): Record<string, MemberState> {
  const states = Object.values(members);
  if (states.length === 0 || states.includes("alive")) return members;
  const out: Record<string, MemberState> = {};
  for (const [name, state] of Object.entries(members)) out[name] = state === "dead" ? "suspect" : state;
  return out;
}

/**
 * Push `rows` straight to the members named in `to` (every one not known to have left), in one
 * signed `push` frame each, besides the usual dissemination to random peers. For the few rows whose
 * latency decides a failover (a gateway claim): the nodes of a gateway cluster that are not gateway
 * candidates usually reach only their own LAN, so random gossip through the other clusters' agents
 * never reaches them and they would wait for their own probes (seconds) to notice the new gateway.
 * The frame also carries this node's own alive state: a receiver that wrongly holds it dead (it
 * only hears from a few peers) answers with a "you are dead" notice, this node refutes with a
 * higher incarnation, and the next push (see DIRECT_PUSH_AT_MS) revives it there, so the receiver
 * stops ignoring the claim of a candidate it thinks is dead.
 */
export function pushDirect(
  node: GossipNode,
  transport: { send(to: string, bytes: Uint8Array): void },
  rows: ReplicatedRow[],
  to: readonly string[],
): number {
  const want = new Set(to);
  const targets = node.memberList().filter((m) => want.has(m.name) && m.state !== "left");
  if (targets.length === 0 || rows.length === 0) return 0;
  const self = { n: node.name, a: node.addr, i: node.currentIncarnation, s: "alive" as const };
  const frame = node.codec.encode({ t: "push", rows, m: [self] });
  for (const m of targets) transport.send(m.addr, frame);
  return targets.length;
}

/** When a direct push is sent (ms after the write): at once, then again after a refutation's round trip. */
export const DIRECT_PUSH_AT_MS = [0, 300, 1000] as const;

/** Default grace before a dead member's routes/FDB entries are withdrawn (elections react at once). */
export const DEAD_GRACE_MS = 10_000;

/**
 * The membership used for routes and tunnel peers: a node counts as dead only after it has been
 * dead for `graceMs`. SWIM sees agents, not kernels: a restarting agent (or one starved of CPU)
 * looks dead for a few seconds while its node keeps forwarding, and for a P2P node there is no
 * other path to withdraw to. Gateway election uses the raw states, so failover stays fast.
 *
 * `connectedSince`: when this agent last went from "no peer alive" to "some peer alive". The grace
 * counts from then at the earliest: while isolated the guard (planningMembers) kept every dead
 * peer, and the first peer heard from must not withdraw, at once, every peer that died (or was
 * never heard from) meanwhile — the others are usually re-confirmed by that peer's member list
 * within a round trip.
 */
export function reachabilityMembers(
  members: Array<{ name: string; state: MemberState; since: number }>,
  now: number,
  graceMs: number,
  connectedSince = Number.NEGATIVE_INFINITY,
): Record<string, MemberState> {
  const out: Record<string, MemberState> = {};
  for (const m of members) {
    const deadFor = now - Math.max(m.since, connectedSince);
    out[m.name] = m.state === "dead" && deadFor < graceMs ? "suspect" : m.state;
  }
  return out;
}
