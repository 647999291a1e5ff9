/**
 * Gossip in the agent: a GossipNode over websockets (/v1/gossip on the agent's TLS port), the SQLite
 * store as its replica, SWIM membership feeding the planner, and local writes published to peers.
 */
import { Gauge } from "../observability/index.ts";
import {
  AGENT_GOSSIP_CONFIG,
  type GossipNode as GossipNodeT,
  GossipNode,
  type MemberInfo,
  realClock,
  realRandom,
} from "../gossip/index.ts";
import { gossipRoute, WsTransport } from "../gossip/ws-transport.ts";
import type { ReplicatedRow, Store } from "../store/index.ts";
import type { MemberState, Node } from "../topology/index.ts";
import type { Agent } from "./agent.ts";
import { MemberEventLog } from "./member-events.ts";

export const GOSSIP_PATH = "/v1/gossip";

/** The agent's gossip timings live with the other gossip tunables (internal/gossip/config.ts). */
export { AGENT_GOSSIP_CONFIG } from "../gossip/index.ts";

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
function memberAddr(store: Store, n: Node, port: string): string | undefined {
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
  node: GossipNodeT,
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

export interface AgentGossip {
  node: GossipNodeT;
  transport: WsTransport;
  /**
   * Publish rows this agent wrote (seed, own status) to peers. `direct`: members that must get them
   * now, pushed to each at once on top of the random dissemination (see pushDirect).
   */
  publish(rows: ReplicatedRow[], direct?: readonly string[]): void;
  members(): Record<string, MemberState>;
  /** Membership for routes/peers: dead only after DEAD_GRACE_MS, plus the isolation guard. */
  planMembers(): Record<string, MemberState>;
  /** Membership for gateway election: raw SWIM states, plus the isolation guard. */
  electionMembers(): Record<string, MemberState>;
  leave(): Promise<void>;
  stop(): void;
}

/**
 * Build the gossip layer for a configured agent. Must be called before `agent.start()` serves
 * (it mounts the websocket route through `agent.extendApp`); `startGossip` starts it afterwards.
 */
export function prepareGossip(agent: Agent): { mount: () => void; start: () => AgentGossip | undefined } {
  const transport = new WsTransport();
  let g: AgentGossip | undefined;
  const mount = () => {
    const prev = agent.extendApp;
    agent.extendApp = (app) => {
      prev?.(app);
      app.get(GOSSIP_PATH, gossipRoute(transport));
    };
  };
  const start = (): AgentGossip | undefined => {
    const secret = agent.secret;
    if (!secret) {
      agent.logger.warn("no installation secret (--secret-file): gossip disabled, the agent relies on seeding only");
      return undefined;
    }
    const { cfg, store, logger } = agent;
    const selfUrl = agent.endpoint;
    if (!selfUrl) {
      logger.warn("no TCP listener or --advertise URL: gossip disabled");
      return undefined;
    }
    const addr = gossipAddr(selfUrl);
    const port = new URL(selfUrl).port || "5678";
    // Members already in the replica (seeded topology + their published endpoints): unconfirmed
    // (planned as suspect, i.e. kept) until heard from; declared dead if they never answer.
    const topo = store.snapshot();
    const known = topo.nodes
      .filter((n) => n.name !== cfg.node)
      .map((n) => {
        const a = memberAddr(store, n, port);
        return a ? { name: n.name, addr: a } : undefined;
      })
      .filter((x): x is { name: string; addr: string } => x !== undefined);
    const incarnation = Number(store.getMeta("gossip_incarnation") ?? "0") + 1;
    store.setMeta("gossip_incarnation", String(incarnation));
    const node = new GossipNode({
      name: cfg.node,
      addr,
      secret,
      transport,
      clock: realClock(),
      random: realRandom(),
      replica: store,
      incarnation,
      members: known,
      config: AGENT_GOSSIP_CONFIG,
    });
    const events = new MemberEventLog({ logger, unconfirmed: known.map((k) => k.name) });
    // Re-plan when a grace ends (a node that stays dead has its routes withdrawn); one timer per
    // second of deadline, however many members died together.
    const replans = new Set<number>();
    const replanAt = (at: number, why: string) => {
      const slot = Math.ceil(at / 1000);
      if (replans.has(slot)) return;
      replans.add(slot);
      const delay = Math.max(0, slot * 1000 - Date.now()) + 50;
      setTimeout(() => {
        replans.delete(slot);
        agent.loop.trigger(why, 0);
      }, delay);
    };
    const alive = new Set<string>();
    let connectedSince = Date.now();
    // Membership follows the topology (membershipChanges): on every change of the replica's nodes,
    // and when a member that is not a topology node dies or leaves. Coalesced into one pass.
    let topoNames = new Set(topo.nodes.map((n) => n.name));
    let syncTimer: ReturnType<typeof setTimeout> | undefined;
    const syncTopology = () => {
      syncTimer = undefined;
      if (!node.isRunning) return;
      const t = store.snapshot();
      topoNames = new Set(t.nodes.map((n) => n.name));
      const byName = new Map(t.nodes.map((n) => [n.name, n]));
      const { add, forget } = membershipChanges([...topoNames], node.memberList(), cfg.node, (name) => {
        const n = byName.get(name);
        return n ? memberAddr(store, n, port) : undefined;
      });
      const forgotten = forget.filter((name) => node.forget(name));
      for (const name of forgotten) {
        store.removeMember(name);
        alive.delete(name);
      }
      const added = node.addMembers(add);
      events.topologyChanged(added, forgotten);
      if (forgotten.length > 0 || added.length > 0) agent.loop.trigger("membership follows the topology", 0);
    };
    const scheduleSync = () => {
      syncTimer ??= setTimeout(syncTopology, 0);
    };
    const unsubscribe = store.onChange((rows) => {
      if (rows.some((r) => r.table === "nodes")) scheduleSync();
    });
    // Member rows of nodes no longer in the topology, left from before a restart (kosmosctl inspect reads them).
    if (topoNames.size > 0) {
      for (const m of store.listMembers()) if (!topoNames.has(m.name)) store.removeMember(m.name);
    }
    node.onMemberChange((name, state, info) => {
      store.upsertMember({ name, state, incarnation: info.incarnation, address: info.addr, updatedAt: Date.now() });
      events.record(name, state, info);
      const wasIsolated = alive.size === 0;
      if (state === "alive") alive.add(name);
      else alive.delete(name);
      if (wasIsolated && alive.size > 0) {
        connectedSince = Date.now();
        replanAt(connectedSince + DEAD_GRACE_MS, `grace after reconnection (${DEAD_GRACE_MS} ms)`);
      }
      agent.loop.trigger(`member ${name} ${state}`, 0);
      if (state === "dead") replanAt(Date.now() + DEAD_GRACE_MS, `member ${name} dead for ${DEAD_GRACE_MS} ms`);
      if ((state === "dead" || state === "left") && !topoNames.has(name)) scheduleSync();
    });
    node.onRows(() => agent.loop.trigger("gossip"));
    node.onIncarnation((inc) => store.setMeta("gossip_incarnation", String(inc)));
    // A peer that restarted gets a fresh connection: the old one may be dead without an error yet
    // (its machine was gone), and the acks and refutations sent on it would be lost for seconds.
    node.codec.onRestart = (_from, peerAddr) => transport.reset(peerAddr);
    const rejected = new Gauge({
      name: "kosmos_gossip_rejected_frames",
      help: "Gossip frames refused, by reason (forged, replayed, oversized, malformed, ...)",
      labelNames: ["reason"],
      registers: [agent.registry],
      collect() {
        for (const [reason, n] of Object.entries(node.codec.stats.rejected)) this.set({ reason }, n);
      },
    });
    void rejected;
    new Gauge({
      name: "kosmos_gossip_members",
      help: "Gossip members by state",
      labelNames: ["state"],
      registers: [agent.registry],
      collect() {
        // "unconfirmed": known from the replica only, never heard from (also counted in its state)
        const counts: Record<string, number> = { alive: 0, suspect: 0, dead: 0, left: 0, unconfirmed: 0 };
        for (const m of node.memberList()) {
          counts[m.state] = (counts[m.state] ?? 0) + 1;
          if (!m.confirmed) counts.unconfirmed = (counts.unconfirmed ?? 0) + 1;
        }
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: "kosmos_gossip_local_health",
      help: "Lifeguard local health score (0 = healthy); probe interval and timeout scale by score + 1",
      registers: [agent.registry],
      collect() {
        this.set(node.localHealth);
      },
    });
    const seeds = cfg.seeds.map(gossipAddr);
    node.start(seeds);
    logger.info({ addr, seeds: seeds.length, known: known.length, incarnation }, "gossip started");
    g = {
      node,
      transport,
      publish: (rows, direct) => {
        node.publish(rows);
        if (!direct || direct.length === 0) return;
        pushDirect(node, transport, rows, direct);
        // Repeats are harmless: an older row loses to a newer one (LWW) wherever it lands.
        for (const at of DIRECT_PUSH_AT_MS.slice(1)) {
          setTimeout(() => {
            if (node.isRunning) pushDirect(node, transport, rows, direct);
          }, at);
        }
      },
      members: () => {
        const out: Record<string, MemberState> = {};
        for (const m of node.memberList()) out[m.name] = m.state;
        return out;
      },
      planMembers: () =>
        planningMembers(reachabilityMembers(node.memberList(), Date.now(), DEAD_GRACE_MS, connectedSince)),
      electionMembers: () => planningMembers(g?.members() ?? {}),
      leave: () => node.leave(),
      stop: () => {
        unsubscribe();
        if (syncTimer) clearTimeout(syncTimer);
        node.stop();
        transport.close();
      },
    };
    return g;
  };
  return { mount, start };
}
