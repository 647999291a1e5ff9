/**
 * Gossip in the agent: a GossipNode over websockets (/v1/gossip on the agent's TLS port), the SQLite
 * store as its replica, SWIM membership feeding the planner, and local writes published to peers.
 *
 * `startGossip` returns what the agent needs and nothing else: the websocket route to mount, the
 * membership views the control loop plans with, `publish` for rows this agent wrote, and
 * leave/stop. It never rewrites the agent: the agent hands it a `trigger` and its store.
 *
 * Control-loop triggers: a row from a peer changes the store, and the agent's store subscription
 * triggers the one pass (reason "replica"). Gossip adds none for it: membership following the
 * topology is applied lazily, before any view is read (so the pass sees it), and only a change of
 * a member's SWIM state (or the end of a dead member's grace) triggers from here.
 */
import type { MiddlewareHandler } from "hono";
import {
  AGENT_GOSSIP_CONFIG,
  GossipNode,
  gossipRoute,
  type MemberInfo,
  realClock,
  realRandom,
  WsTransport,
} from "../gossip/index.ts";
import { Counter, Gauge, type Logger, type Registry } from "../observability/index.ts";
import type { ReplicatedRow, Store } from "../store/index.ts";
import type { MemberState } from "../topology/index.ts";
import { MemberEventLog } from "./member-events.ts";
import {
  DEAD_GRACE_MS,
  DIRECT_PUSH_AT_MS,
  gossipAddr,
  memberAddr,
  membershipChanges,
  planningMembers,
  pushDirect,
  reachabilityMembers,
  topologyReach,
} from "./membership.ts";

export {
  DEAD_GRACE_MS,
  DIRECT_PUSH_AT_MS,
  GOSSIP_PATH,
  gossipAddr,
  membershipChanges,
  planningMembers,
  pushDirect,
  reachabilityMembers,
  topologyReach,
} from "./membership.ts";

/** The agent's gossip timings live with the other gossip tunables (internal/gossip/config.ts). */
export { AGENT_GOSSIP_CONFIG } from "../gossip/index.ts";

export interface GossipDeps {
  /** This node's name. */
  node: string;
  /** Installation secret (HMAC key material). */
  secret: Uint8Array;
  /** This agent's URL as peers reach it (its gossip address is derived from it). */
  selfUrl: string;
  /** Agent URLs to join through. */
  seeds: readonly string[];
  store: Store;
  logger: Logger;
  registry: Registry;
  /** Schedule a control-loop pass (`delayMs` 0: at once). */
  trigger(reason: string, delayMs?: number): void;
  /** The transport (default a new WsTransport; tests deliver frames through it). */
  transport?: WsTransport;
}

/** The membership views (each applies pending topology changes to the member table first). */
export interface GossipViews {
  /** Raw SWIM states. */
  members(): Record<string, MemberState>;
  /** Membership for routes/peers: dead only after DEAD_GRACE_MS, plus the isolation guard. */
  planMembers(): Record<string, MemberState>;
  /** Membership for gateway election: raw SWIM states, plus the isolation guard. */
  electionMembers(): Record<string, MemberState>;
  /** The live member table (incarnations, addresses, confirmed), for inspection. */
  memberList(): MemberInfo[];
}

export interface AgentGossip {
  /** The websocket route, to mount at GOSSIP_PATH. */
  route: MiddlewareHandler;
  views: GossipViews;
  /**
   * Publish rows this agent wrote (seed, own status) to peers. `direct`: members that must get them
   * now, pushed to each at once on top of the random dissemination (see pushDirect).
   */
  publish(rows: ReplicatedRow[], direct?: readonly string[]): void;
  leave(): Promise<void>;
  stop(): void;
}

/** Start gossip for a configured agent (the caller mounts `route` at GOSSIP_PATH). */
export function startGossip(deps: GossipDeps): AgentGossip {
  const { store, logger } = deps;
  const transport = deps.transport ?? new WsTransport();
  const addr = gossipAddr(deps.selfUrl);
  const port = new URL(deps.selfUrl).port || "5678";
  // Members already in the replica (seeded topology + their published endpoints): unconfirmed
  // (planned as suspect, i.e. kept) until heard from; declared dead if they never answer.
  const topo = store.snapshot();
  const known = topo.nodes
    .filter((n) => n.name !== deps.node)
    .map((n) => {
      const a = memberAddr(store, n, port);
      return a ? { name: n.name, addr: a } : undefined;
    })
    .filter((x): x is { name: string; addr: string } => x !== undefined);
  const incarnation = Number(store.getMeta("gossip_incarnation") ?? "0") + 1;
  store.setMeta("gossip_incarnation", String(incarnation));
  const node = new GossipNode({
    name: deps.node,
    addr,
    secret: deps.secret,
    transport,
    clock: realClock(),
    random: realRandom(),
    replica: store,
    incarnation,
    members: known,
    config: AGENT_GOSSIP_CONFIG,
    // a gateway cluster's non-candidates reach only their own LAN: only their cluster probes them,
    // and the others suspect them when all of that cluster's gateways are down (derived liveness)
    reach: topologyReach(topo),
  });
  const events = new MemberEventLog({ logger, unconfirmed: known.map((k) => k.name) });
  const health = trackHealth(deps.trigger);
  const follow = followTopology({
    node,
    store,
    port,
    events,
    topology: topo.nodes.map((n) => n.name),
    onForget: (name) => health.forget(name),
  });
  node.onMemberChange((name, state, info) => {
    store.upsertMember({
      name,
      state,
      incarnation: info.incarnation,
      address: info.addr,
      updatedAt: Date.now(),
    });
    events.record(name, state, info);
    health.changed(name, state);
    if ((state === "dead" || state === "left") && !follow.inTopology(name)) follow.schedule();
  });
  node.onIncarnation((inc) => store.setMeta("gossip_incarnation", String(inc)));
  // A peer that restarted gets a fresh connection: the old one may be dead without an error yet
  // (its machine was gone), and the acks and refutations sent on it would be lost for seconds.
  node.codec.onRestart = (_from, peerAddr) => transport.reset(peerAddr);
  registerGossipMetrics(node, deps.registry);
  const seeds = deps.seeds.map(gossipAddr);
  node.start(seeds);
  logger.info({ addr, seeds: seeds.length, known: known.length, incarnation }, "gossip started");

  const members = (): Record<string, MemberState> => {
    follow.apply();
    const out: Record<string, MemberState> = {};
    for (const m of node.memberList()) out[m.name] = m.state;
    return out;
  };
  const views: GossipViews = {
    members,
    planMembers: () => {
      follow.apply();
      return planningMembers(
        reachabilityMembers(node.memberList(), Date.now(), DEAD_GRACE_MS, health.connectedSince),
      );
    },
    electionMembers: () => planningMembers(members()),
    memberList: () => {
      follow.apply();
      return node.memberList();
    },
  };
  return {
    route: gossipRoute(transport),
    views,
    publish: (rows, direct) => publish(node, transport, rows, direct),
    leave: () => node.leave(),
    stop: () => {
      follow.stop();
      health.stop();
      node.stop();
      transport.close();
    },
  };
}

/** Disseminate `rows`, and push them to `direct` at once and again after DIRECT_PUSH_AT_MS. */
function publish(
  node: GossipNode,
  transport: WsTransport,
  rows: ReplicatedRow[],
  direct?: readonly string[],
): void {
  node.publish(rows);
  if (!direct || direct.length === 0) return;
  pushDirect(node, transport, rows, direct);
  // Repeats are harmless: an older row loses to a newer one (LWW) wherever it lands.
  for (const at of DIRECT_PUSH_AT_MS.slice(1)) {
    setTimeout(() => {
      if (node.isRunning) pushDirect(node, transport, rows, direct);
    }, at);
  }
}

/**
 * Membership follows the replica's topology (membershipChanges): after a change of the replica's
 * nodes, and when a member that is not a topology node dies or leaves. The work is coalesced into
 * one pass per tick and is also done on demand, before a view is read: the control-loop pass the
 * store change triggered sees the new members without a trigger of its own. (Adding unconfirmed
 * members or forgetting dead non-topology ones changes no plan by itself: absent members count as
 * alive, and the planner plans topology nodes only.)
 */
function followTopology(o: {
  node: GossipNode;
  store: Store;
  port: string;
  events: MemberEventLog;
  topology: string[];
  onForget(name: string): void;
}): { apply(): void; schedule(): void; inTopology(name: string): boolean; stop(): void } {
  const { node, store } = o;
  let names = new Set(o.topology);
  let dirty = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const apply = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (!dirty || !node.isRunning) return;
    dirty = false;
    const t = store.snapshot();
    names = new Set(t.nodes.map((n) => n.name));
    const byName = new Map(t.nodes.map((n) => [n.name, n]));
    const { add, forget } = membershipChanges([...names], node.memberList(), node.name, (name) => {
      const n = byName.get(name);
      return n ? memberAddr(store, n, o.port) : undefined;
    });
    const forgotten = forget.filter((name) => node.forget(name));
    for (const name of forgotten) {
      store.removeMember(name);
      o.onForget(name);
    }
    const added = node.addMembers(add);
    node.setReach(topologyReach(t));
    o.events.topologyChanged(added, forgotten);
  };
  const schedule = () => {
    dirty = true;
    timer ??= setTimeout(apply, 0);
  };
  const unsubscribe = store.onChange((rows) => {
    // nodes: members come and go; clusters: a network type decides who reaches whom (topologyReach)
    if (rows.some((r) => r.table === "nodes" || r.table === "clusters")) schedule();
  });
  // Member rows of nodes no longer in the topology, left from before a restart (kosmosctl inspect reads them).
  if (names.size > 0) {
    for (const m of store.listMembers()) if (!names.has(m.name)) store.removeMember(m.name);
  }
  return {
    apply,
    schedule,
    inTopology: (name) => names.has(name),
    stop: () => {
      unsubscribe();
      if (timer) clearTimeout(timer);
    },
  };
}

/**
 * Member state changes trigger a pass; a dead member's grace ending (its routes are withdrawn then)
 * and the grace after reconnecting from isolation trigger one more, one timer per second of
 * deadline however many members died together. `connectedSince`: see reachabilityMembers.
 */
function trackHealth(trigger: GossipDeps["trigger"]): {
  changed(name: string, state: MemberState): void;
  forget(name: string): void;
  readonly connectedSince: number;
  stop(): void;
} {
  const alive = new Set<string>();
  let connectedSince = Date.now();
  const replans = new Map<number, ReturnType<typeof setTimeout>>();
  const replanAt = (at: number, why: string) => {
    const slot = Math.ceil(at / 1000);
    if (replans.has(slot)) return;
    const delay = Math.max(0, slot * 1000 - Date.now()) + 50;
    const t = setTimeout(() => {
      replans.delete(slot);
      trigger(why, 0);
    }, delay);
    replans.set(slot, t);
  };
  return {
    changed(name, state) {
      const wasIsolated = alive.size === 0;
      if (state === "alive") alive.add(name);
      else alive.delete(name);
      if (wasIsolated && alive.size > 0) {
        connectedSince = Date.now();
        replanAt(connectedSince + DEAD_GRACE_MS, `grace after reconnection (${DEAD_GRACE_MS} ms)`);
      }
      trigger(`member ${name} ${state}`, 0);
      if (state === "dead")
        replanAt(Date.now() + DEAD_GRACE_MS, `member ${name} dead for ${DEAD_GRACE_MS} ms`);
    },
    forget(name) {
      alive.delete(name);
    },
    get connectedSince() {
      return connectedSince;
    },
    stop() {
      for (const t of replans.values()) clearTimeout(t);
      replans.clear();
    },
  };
}

/**
 * Failure-detector counters (GossipStats), as Prometheus counters: each scrape adds what the node
 * counted since the previous one. A node's own `refutations` growing means peers keep suspecting it
 * (it is slow to answer: CPU starvation, a blocked event loop); `deaths_declared` between live
 * agents are false verdicts, and an endpoint on a node held dead leaves the clusterset answers.
 */
const DETECTOR_COUNTERS = {
  probes: ["kosmos_gossip_probes_total", "SWIM probes sent"],
  probesFailed: [
    "kosmos_gossip_probes_failed_total",
    "Probes with no ack by the deadline (direct and indirect)",
  ],
  suspicionsRaised: ["kosmos_gossip_suspicions_total", "Members this node started to suspect"],
  suspicionsDerived: [
    "kosmos_gossip_suspicions_derived_total",
    "Of those, members it does not reach whose vouchers were all suspect or dead (derived liveness)",
  ],
  refutations: ["kosmos_gossip_refutations_total", "Suspicions or death verdicts about this node it refuted"],
  deathsDeclared: [
    "kosmos_gossip_deaths_declared_total",
    "Suspects whose suspicion expired here (declared dead)",
  ],
} as const satisfies Partial<Record<keyof GossipNode["stats"], readonly [string, string]>>;

/** Prometheus metrics of the gossip node (rejected frames, members by state, local health, detector). */
function registerGossipMetrics(node: GossipNode, registry: Registry): void {
  for (const [key, [name, help]] of Object.entries(DETECTOR_COUNTERS)) {
    let reported = 0;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = node.stats[key as keyof typeof DETECTOR_COUNTERS];
        if (now > reported) this.inc(now - reported);
        reported = now;
      },
    });
  }
  new Gauge({
    name: "kosmos_gossip_rejected_frames",
    help: "Gossip frames refused, by reason (forged, replayed, oversized, malformed, ...)",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      for (const [reason, n] of Object.entries(node.codec.stats.rejected)) this.set({ reason }, n);
    },
  });
  new Gauge({
    name: "kosmos_gossip_members",
    help: "Gossip members by state",
    labelNames: ["state"],
    registers: [registry],
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
    registers: [registry],
    collect() {
      this.set(node.localHealth);
    },
  });
}
