/**
 * GossipNode: SWIM membership with Lifeguard (local health multiplier, nacks, buddy system,
 * suspicion timeouts shrinking with independent confirmations), rumor dissemination of replicated
 * rows and membership updates, and anti-entropy against a ReplicaPort. Transport, clock and
 * randomness are injected: the same code runs in the simulator and in the agent.
 *
 * This file keeps the lifecycle, the dispatch of received frames and the periodic ticks. The parts
 * live beside it, as in memberlist (docs/gossip.md, "Code map"): prober.ts (SWIM probes, indirect
 * probes, nacks), membership.ts (the state machine of
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
import { DerivedLiveness } from "./derived.ts";
import { DEFAULT_CONFIG, type GossipConfig, type GossipNodeOptions, type Reach } from "./config.ts";
import { Dissemination, type RowsListener } from "./dissemination.ts";
import { type Member, type MemberInfo, nextRetryAt, toWire } from "./members.ts";
import { type IncarnationListener, type MemberListener, Membership } from "./membership.ts";
import type { Envelope, Message } from "./messages.ts";
import { type Cancel, sample } from "./ports.ts";
import { Prober } from "./prober.ts";
import { type GossipStats, newStats } from "./stats.ts";
import { UnconfirmedSweep } from "./sweep.ts";

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
  private readonly prober: Prober;
  private readonly derived: DerivedLiveness;
  private readonly timers = new Set<Cancel>();
  private startedAt = 0;
  private joinDelay = 0;
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
    this.prober = new Prober(this.cfg, this.stats, members, this.health, host);
    this.derived = new DerivedLiveness(o.name, members.table);
    // gossip targets: the live members this node reaches directly (setReach)
    const live = () => members.table.reachable();
    const pick = (xs: readonly Member[], k: number) => members.table.pick(xs, k);
    this.ae = new AntiEntropyExchange(this.cfg, o.replica, this.stats, {
      ...host,
      live,
      pick,
      membershipHash: () => members.membershipHash(),
      sendMembers: (addr, reply) => members.sendMembers(addr, reply),
    });
    this.rows = new Dissemination(this.cfg, o.replica, this.stats, {
      ...host,
      live,
      pick,
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
        if (!this.leaving) {
          this.prober.probe();
          this.suspectUnvouched();
        }
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
    this.prober.clear();
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
   * When every member that could vouch for an unreachable one is suspect or dead here, this node
   * suspects it itself (derived liveness, derived.ts), or a partition would hide it for good.
   * undefined: everyone reaches everyone (the default).
   */
  setReach(reach: Reach | undefined): void {
    this.prober.reach = reach;
    this.derived.setReach(reach);
    this.members.table.setReach(reach ? (name) => reach(this.name, name) : () => true, reach?.reachers);
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
      case "ack":
        if (m.m) this.members.applyUpdates(m.m, false);
        this.prober.onAck(m.id);
        return;
      case "nack":
        this.prober.onNack(m.id);
        return;
      case "pingReq":
        this.prober.probeFor(addr, m.id, m.target, m.addr, m.nack === true);
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

  // ---------------------------------------------------------------- ticks

  /** Ping or give up on members known from the replica only (sweep.ts), on the probe tick. */
  /** Derived liveness: suspect the unreachable members no alive voucher can speak for any more. */
  private suspectUnvouched(): void {
    for (const m of this.derived.orphans()) {
      this.stats.suspicionsRaised += 1;
      this.stats.suspicionsDerived += 1;
      const { name, addr, incarnation } = m;
      this.members.apply(toWire({ name, addr, incarnation, state: "suspect", from: this.name }), false);
    }
  }

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
        this.send(m.addr, { t: "ping", id: this.prober.id(), to: m.name });
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
      else this.send(m.addr, { t: "ping", id: this.prober.id(), to: m.name });
    }
  }
}
