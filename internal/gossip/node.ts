/**
 * GossipNode: SWIM membership with Lifeguard (local health multiplier, nacks, buddy system,
 * suspicion timeouts shrinking with independent confirmations), rumor dissemination of replicated
 * rows and membership updates, and anti-entropy against a ReplicaPort. Transport, clock and
 * randomness are injected: the same code runs in the simulator and in the agent.
 *
 * This file keeps the lifecycle, the dispatch of received frames and the probing. The parts live
 * beside it, as in memberlist (docs/gossip.md, "Code map"): membership.ts (the state machine of
 * membership news) over members.ts (the member table), suspicion.ts and awareness.ts; sweep.ts
 * (members known from the replica only); dissemination.ts (row rumors); anti-entropy.ts (pure
 * decisions) and anti-entropy-exchange.ts (the messages); config.ts (options, tunables, agent
 * profile).
 *
 * Members known from the replica start *unconfirmed* (never probed, targeted or announced until
 * heard from); membership follows the topology through addMembers() and forget(); only *alive*
 * news creates a member (docs/gossip.md, "Membership").
 */
import type { ReplicatedRow } from "./replicated.ts";
import type { MemberState } from "../topology/index.ts";
import { AntiEntropyExchange } from "./anti-entropy-exchange.ts";
import { Awareness } from "./awareness.ts";
import { Codec } from "./codec.ts";
import { DEFAULT_CONFIG, type GossipConfig, type GossipNodeOptions } from "./config.ts";
import { Dissemination, type RowsListener } from "./dissemination.ts";
import { isLive, type MemberInfo, nextRetryAt, toWire } from "./members.ts";
import { type IncarnationListener, type MemberListener, Membership } from "./membership.ts";
import type { Envelope, Message } from "./messages.ts";
import { type Cancel, sample } from "./ports.ts";
import { type GossipStats, newStats } from "./stats.ts";
import { UnconfirmedSweep } from "./sweep.ts";

/** A helper nacks after this fraction of its probe timeout (the Lifeguard paper uses 80%). */
const NACK_RATIO = 0.8;

export class GossipNode {
  readonly name: string;
  readonly addr: string;
  readonly codec: Codec;
  readonly cfg: GossipConfig;
  readonly stats: GossipStats = newStats();
  private readonly members: Membership;
  private readonly health: Awareness;
  private readonly sweep: UnconfirmedSweep;
  private readonly rows: Dissemination;
  private readonly ae: AntiEntropyExchange;
  private readonly pending = new Map<number, () => void>();
  private readonly nackHandlers = new Map<number, () => void>();
  private readonly timers = new Set<Cancel>();
  private reach: ((a: string, b: string) => boolean) | undefined;
  private startedAt = 0;
  private joinDelay = 0;
  private nextId = 1;
  private running = false;
  private leaving = false;

  constructor(private readonly o: GossipNodeOptions) {
    this.name = o.name;
    this.addr = o.addr;
    this.cfg = { ...DEFAULT_CONFIG, ...o.config };
    this.codec = new Codec({
      secret: o.secret,
      name: o.name,
      addr: o.addr,
      epoch: o.epoch ?? Math.floor(o.clock.now()),
      maxFrameBytes: o.maxFrameBytes,
    });
    this.health = new Awareness(this.cfg.awarenessMaxMultiplier, this.cfg.lifeguard);
    const host = {
      name: o.name,
      addr: o.addr,
      random: o.random,
      now: () => o.clock.now(),
      send: (addr: string, m: Message) => this.send(addr, m),
      after: (ms: number, fn: () => void) => this.after(ms, fn),
      isRunning: () => this.running,
      isLeaving: () => this.leaving,
    };
    const members = new Membership(this.cfg, this.stats, host, this.health, o.incarnation ?? 0);
    this.members = members;
    // gossip targets: the live members this node reaches directly (setReach)
    const live = () => members.table.reachable();
    this.ae = new AntiEntropyExchange(this.cfg, o.replica, this.stats, {
      ...host,
      live,
      membershipHash: () => members.membershipHash(),
      sendMembers: (addr, reply) => members.sendMembers(addr, reply),
    });
    this.rows = new Dissemination(this.cfg, o.replica, this.stats, {
      ...host,
      live,
      retransmitLimit: () => members.retransmitLimit(),
      membersPending: () => members.queue.size,
      piggyback: () => members.piggyback(),
      bulk: (exclude) => this.ae.burst(exclude),
    });
    if (o.reach) this.setReach(o.reach);
    this.sweep = new UnconfirmedSweep(this.cfg);
    this.addMembers(o.members ?? []);
    this.sweep.shuffle(o.random);
    o.transport.onMessage((bytes) => this.receive(bytes));
  }

  // ---------------------------------------------------------------- public API

  /** Start periodic probing, gossip rounds and anti-entropy; join through `seeds` (addresses). */
  start(seeds: string[] = []): void {
    if (this.running) return;
    this.running = true;
    const c = this.cfg;
    this.startedAt = this.o.clock.now();
    // the probe tick: its period is the probe interval scaled by the local health (Lifeguard)
    this.every(
      c.probeIntervalMs,
      () => {
        this.probe();
        this.sweepUnconfirmed();
      },
      () => this.health.scale(c.probeIntervalMs),
    );
    this.every(c.gossipIntervalMs, () => this.rows.round());
    this.every(c.antiEntropyIntervalMs, () => {
      if (!this.leaving) this.ae.round();
    });
    this.every(c.reconnectIntervalMs, () => this.reconnect());
    this.members.enqueue(this.members.selfUpdate());
    if (seeds.length > 0) this.join(seeds);
  }

  /**
   * Contact seeds (addresses); retried while no member is alive (unconfirmed replica members do
   * not count), joinRetryMs doubling up to reconnectMaxMs.
   */
  join(seeds: string[]): void {
    const others = seeds.filter((s) => s !== this.addr);
    if (others.length === 0) return;
    for (const s of others) {
      this.send(s, { t: "join", inc: this.members.currentIncarnation });
      this.send(s, this.ae.summary());
    }
    this.joinDelay = Math.min(
      this.cfg.reconnectMaxMs,
      this.joinDelay === 0 ? this.cfg.joinRetryMs : this.joinDelay * 2,
    );
    this.after(this.joinDelay, () => {
      if (this.running && !this.leaving && this.members.table.liveCount === 0) this.join(others);
      else this.joinDelay = 0;
    });
  }

  /** Disseminate rows the local agent just wrote (or seeded) in its replica. */
  publish(rows: ReplicatedRow[]): void {
    if (rows.length === 0) return;
    this.rows.disseminate(rows, undefined);
  }

  /** Graceful leave: announce "left", keep gossiping for leaveGraceMs, then stop. */
  leave(): Promise<void> {
    if (!this.running || this.leaving) return Promise.resolve();
    this.leaving = true;
    const left = this.members.selfUpdate();
    this.members.enqueue(left);
    for (const m of sample(this.o.random, this.members.table.reachable(), this.cfg.fanout * 2)) {
      this.send(m.addr, { t: "push", rows: [], m: [left] });
    }
    return new Promise((resolve) => {
      this.after(this.cfg.leaveGraceMs, () => {
        this.stop();
        resolve();
      });
    });
  }

  /** Stop all timers and ignore inbound frames (a crash, from the others' point of view). */
  stop(): void {
    this.running = false;
    for (const t of this.timers) t();
    this.timers.clear();
    this.members.stop();
    this.pending.clear();
    this.nackHandlers.clear();
  }

  /**
   * Add members known from the replica (a node added to the topology, or added back after forget())
   * as the `members` option does; existing members are left as they are. Returns the names added.
   * No member-change event: nothing was heard yet.
   */
  addMembers(list: Array<{ name: string; addr: string; confirmed?: boolean }>): string[] {
    const added = this.members.add(list.filter((m) => m.name !== this.name));
    for (const m of added) if (!m.confirmed) this.sweep.add(m.name);
    return added.map((m) => m.name);
  }

  /**
   * Drop a member (a node removed from the topology, once not alive) entirely, without a member-change
   * event. Stale alive news does not bring it back; a newer incarnation or a frame from it does
   * (docs/gossip.md, "Members removed from the topology"). Returns whether it was a member.
   */
  forget(name: string): boolean {
    return this.members.forget(name);
  }

  /**
   * Which members can send to which directly (symmetric), e.g. from the topology: the nodes of a
   * gateway-mode cluster that are not gateway candidates reach only their own cluster. Members this
   * node cannot reach are never probed or picked as gossip targets, and an indirect probe asks only
   * helpers that reach the target: their failures are found by the members that reach them and
   * learned by gossip, instead of every unreachable member being suspected by every other one.
   * undefined: everyone reaches everyone (the default).
   */
  setReach(reach: ((a: string, b: string) => boolean) | undefined): void {
    this.reach = reach;
    this.members.table.setReach(reach ? (name) => reach(this.name, name) : () => true);
  }

  onMemberChange(cb: MemberListener): void {
    this.members.listeners.push(cb);
  }

  /** Rows from peers that changed the local replica (the agent re-plans on these). */
  onRows(cb: RowsListener): void {
    this.rows.listeners.push(cb);
  }

  /**
   * Our own incarnation went up (a refutation). The agent persists it so that after a restart it
   * starts above every incarnation peers may still hold for it, and needs no refutation round.
   */
  onIncarnation(cb: IncarnationListener): void {
    this.members.incarnationListeners.push(cb);
  }

  get currentIncarnation(): number {
    return this.members.currentIncarnation;
  }

  /** Members heard from and alive or suspect (what SWIM probes and gossip targets). */
  get liveCount(): number {
    return this.members.table.liveCount;
  }

  /** Lifeguard local health score (0 = healthy, up to awarenessMaxMultiplier - 1). */
  get localHealth(): number {
    return this.health.score;
  }

  get isRunning(): boolean {
    return this.running;
  }

  memberList(): MemberInfo[] {
    return this.members.memberList();
  }

  memberState(name: string): MemberState | undefined {
    if (name === this.name) return this.leaving ? "left" : "alive";
    return this.members.table.get(name)?.state;
  }

  /** Pending broadcast items (for tests and metrics). */
  queueSizes(): { rows: number; members: number; rowsDropped: number; membersDropped: number } {
    return {
      rows: this.rows.queue.size,
      members: this.members.queue.size,
      rowsDropped: this.rows.queue.dropped,
      membersDropped: this.members.queue.dropped,
    };
  }

  // ---------------------------------------------------------------- plumbing

  /** Run fn every `period()` ms (`ms` unless given), from a random phase in [1, ms). */
  private every(ms: number, fn: () => void, period: () => number = () => ms): void {
    // random phase so that nodes started together do not tick together
    const tick = (delay: number): void => {
      const cancel = this.o.clock.setTimer(delay, () => {
        this.timers.delete(cancel);
        if (!this.running) return;
        fn();
        if (this.running) tick(period());
      });
      this.timers.add(cancel);
    };
    tick(Math.max(1, Math.floor(this.o.random.next() * ms)));
  }

  private after(ms: number, fn: () => void): Cancel {
    const cancel = this.o.clock.setTimer(ms, () => {
      this.timers.delete(cancel);
      fn();
    });
    this.timers.add(cancel);
    return () => {
      this.timers.delete(cancel);
      cancel();
    };
  }

  private send(addr: string, m: Message): void {
    let bytes: Uint8Array;
    try {
      bytes = this.codec.encode(m);
    } catch {
      this.stats.encodeErrors += 1;
      return;
    }
    this.o.transport.send(addr, bytes);
  }

  // ---------------------------------------------------------------- receive

  private receive(bytes: Uint8Array): void {
    if (!this.running) return;
    const env = this.codec.tryDecode(bytes);
    if (!env || env.f === this.name) return;
    const t = env.m.t;
    this.stats.messagesIn[t] = (this.stats.messagesIn[t] ?? 0) + 1;
    this.members.heard(env.f, env.a);
    this.dispatch(env);
  }

  private dispatch(env: Envelope): void {
    const m = env.m;
    const from = env.f;
    const addr = env.a;
    switch (m.t) {
      case "ping":
        if (m.m) this.members.applyUpdates(m.m, false);
        if (m.to !== this.name) return;
        this.send(addr, { t: "ack", id: m.id, m: this.members.piggyback() });
        return;
      case "ack": {
        if (m.m) this.members.applyUpdates(m.m, false);
        const cb = this.pending.get(m.id);
        if (cb) {
          this.pending.delete(m.id);
          cb();
        }
        return;
      }
      case "nack":
        this.nackHandlers.get(m.id)?.();
        return;
      case "pingReq":
        this.probeFor(addr, m.id, m.target, m.addr, m.nack === true);
        return;
      case "join":
        this.members.apply(toWire({ name: from, addr, incarnation: m.inc, state: "alive" }), false);
        this.members.sendMembers(addr, false);
        return;
      case "members":
        this.members.applyUpdates(m.members, true);
        if (m.reply) this.members.sendMembers(addr, false);
        return;
      case "push":
        if (m.m) this.members.applyUpdates(m.m, false);
        if (m.rows.length > 0) this.rows.onPush(m.rows as ReplicatedRow[], from);
        return;
      case "rows":
        this.rows.onRepair(m.rows as ReplicatedRow[], from);
        return;
      case "ae":
        this.ae.onSummary(addr, m.buckets, m.mh);
        return;
      case "aeOwners":
        this.ae.onOwners(addr, m.buckets, m.digests);
        return;
      case "pull":
        this.ae.onPull(addr, m.wants);
        return;
      case "range":
        this.ae.onRange(addr, m.owner, m.ranges);
        return;
      case "rangePull":
        this.ae.onRangePull(addr, m.owner, m.ranges);
        return;
    }
  }

  // ---------------------------------------------------------------- probing

  /**
   * SWIM probe of the next member: a direct ping; no ack within the (scaled) probe timeout →
   * pingReq to indirectChecks alive helpers, asking for nacks; no ack by the end of the interval →
   * suspect. The helpers' answers (or silence) move our own local health (docs/gossip.md).
   */
  private probe(): void {
    if (this.leaving) return;
    const tgt = this.members.table.nextProbeTarget();
    if (!tgt) return;
    const lifeguard = this.cfg.lifeguard;
    const interval = this.health.scale(this.cfg.probeIntervalMs);
    const timeout = this.health.scale(this.cfg.probeTimeoutMs);
    this.stats.probes += 1;
    const id = this.nextId++;
    let acked = false;
    let nacks = 0;
    let expectedNacks = 0;
    this.pending.set(id, () => {
      if (acked) return;
      acked = true;
      this.members.applyHealth(-1);
    });
    let m = this.members.piggyback();
    if (lifeguard && tgt.state === "suspect") {
      // buddy system: tell the suspect directly, so it refutes now instead of when gossip reaches it
      const { name, addr, incarnation } = tgt;
      const buddy = toWire({ name, addr, incarnation, state: "suspect", from: this.name });
      m = [buddy, ...(m ?? []).filter((u) => u.n !== tgt.name)];
    }
    this.send(tgt.addr, { t: "ping", id, to: tgt.name, m });
    this.after(timeout, () => {
      if (acked || !this.running) return;
      // helpers that can reach the target (a helper that cannot would only nack)
      const reach = this.reach;
      const helpers = sample(
        this.o.random,
        this.members.table
          .reachable()
          .filter((x) => x.name !== tgt.name && x.state === "alive" && (!reach || reach(x.name, tgt.name))),
        this.cfg.indirectChecks,
      );
      if (lifeguard && helpers.length > 0) {
        expectedNacks = helpers.length;
        this.nackHandlers.set(id, () => {
          nacks += 1;
          this.stats.nacksReceived += 1;
          // every helper reports silence too: the same verdict the deadline would give, sooner
          if (nacks >= expectedNacks) conclude();
        });
      }
      for (const h of helpers) {
        this.send(h.addr, {
          t: "pingReq",
          id,
          target: tgt.name,
          addr: tgt.addr,
          nack: lifeguard || undefined,
        });
      }
    });
    let concluded = false;
    const conclude = (): void => {
      if (concluded) return;
      concluded = true;
      this.pending.delete(id);
      this.nackHandlers.delete(id);
      if (acked || !this.running) return;
      this.stats.probesFailed += 1;
      // Lifeguard: helpers that answered neither ack nor nack point at us (slow, cut off), not at
      // the target; with no helper to ask, any failed probe counts against our own health.
      this.members.applyHealth(expectedNacks > 0 ? expectedNacks - Math.min(nacks, expectedNacks) : 1);
      const cur = this.members.table.get(tgt.name);
      // a failed probe of a suspect counts as an independent confirmation (Lifeguard)
      if (!cur || !isLive(cur)) return;
      this.stats.suspicionsRaised += 1;
      const { name, addr, incarnation } = cur;
      this.members.apply(toWire({ name, addr, incarnation, state: "suspect", from: this.name }), false);
    };
    this.after(Math.max(timeout + 1, interval - 1), conclude);
  }

  /** An indirect probe asked by `asker`: ping the target, relay its ack, or nack when asked to. */
  private probeFor(asker: string, askId: number, target: string, targetAddr: string, nack: boolean): void {
    this.stats.indirectProbes += 1;
    const id = this.nextId++;
    let acked = false;
    this.pending.set(id, () => {
      acked = true;
      this.send(asker, { t: "ack", id: askId });
    });
    this.after(this.cfg.probeIntervalMs, () => this.pending.delete(id));
    this.send(targetAddr, { t: "ping", id, to: target });
    if (!nack) return;
    // Lifeguard: the asker waits (its probe interval - its probe timeout); answer well before
    this.after(Math.max(1, Math.floor(this.cfg.probeTimeoutMs * NACK_RATIO)), () => {
      if (acked || !this.running) return;
      this.stats.nacksSent += 1;
      this.send(asker, { t: "nack", id: askId });
    });
  }

  /** Ping or give up on members known from the replica only (sweep.ts), on the probe tick. */
  private sweepUnconfirmed(): void {
    if (this.sweep.size === 0 || this.leaving) return;
    this.sweep.tick({
      now: this.o.clock.now(),
      startedAt: this.startedAt,
      lastConfirm: this.members.lastConfirm,
      liveCount: () => this.members.table.liveCount,
      tickMs: this.health.scale(this.cfg.probeIntervalMs),
      member: (name) => this.members.table.get(name),
      declareDead: (m) => this.members.declareUnconfirmedDead(m),
      ping: (m) => {
        this.stats.unconfirmedPings += 1;
        this.send(m.addr, { t: "ping", id: this.nextId++, to: m.name });
      },
    });
  }

  /**
   * Contact dead members whose backoff is due (MemberTable.dueForReconnect): one heard from before
   * gets an anti-entropy summary (a healed partition then push-pulls members and each side refutes
   * its death), one never heard from a ping. Each contact doubles that member's backoff.
   */
  private reconnect(): void {
    if (this.leaving) return;
    const now = this.o.clock.now();
    this.members.table.pruneForgotten(now);
    const { picked, known } = this.members.table.dueForReconnect(now, this.cfg.reconnectPerTick);
    if (picked.length === 0) return;
    const summary = known ? this.ae.summary() : undefined;
    for (const m of picked) {
      this.stats.reconnects += 1;
      m.retries += 1;
      m.retryAt = nextRetryAt(this.cfg, m.retries, now, this.o.random.next());
      if (m.confirmed && summary) this.send(m.addr, summary);
      else this.send(m.addr, { t: "ping", id: this.nextId++, to: m.name });
    }
  }
}
