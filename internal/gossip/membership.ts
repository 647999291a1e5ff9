/**
 * The SWIM membership state machine of one node: what membership news (a peer's update, a member
 * list, our own failed probe, a frame from the member itself) does to the member table, the
 * suspicion timers, our own incarnation (refutation) and the queue of membership updates that ride
 * on probes and pushes. GossipNode feeds it and probes; the member table, suspicion timer and local
 * health are in members.ts, suspicion.ts and awareness.ts.
 */
import type { MemberState } from "../topology/index.ts";
import type { Awareness } from "./awareness.ts";
import { chunk } from "./chunk.ts";
import type { GossipConfig } from "./config.ts";
import type { MemberUpdate, Message } from "./messages.ts";
import {
  type Member,
  type MemberInfo,
  type MemberNews,
  MemberTable,
  memberInfo,
  newMember,
  toWire,
} from "./members.ts";
import { type Cancel, type Random, sample } from "./ports.ts";
import { BroadcastQueue } from "./queue.ts";
import type { GossipStats } from "./stats.ts";
import { reprobeProbability, Suspicion, suspicionTimeout } from "./suspicion.ts";

export type MemberListener = (name: string, state: MemberState, info: MemberInfo) => void;
export type IncarnationListener = (incarnation: number) => void;

/** What the state machine uses of its node. */
export interface MembershipHost {
  readonly name: string;
  readonly addr: string;
  readonly random: Random;
  now(): number;
  send(addr: string, m: Message): void;
  /** A timer the node cancels when it stops. */
  after(ms: number, fn: () => void): Cancel;
  isRunning(): boolean;
  isLeaving(): boolean;
}

export class Membership {
  readonly table: MemberTable;
  /** Membership updates waiting to be sent (piggybacked on probes, acks and pushes). */
  readonly queue: BroadcastQueue<MemberUpdate>;
  readonly listeners: MemberListener[] = [];
  readonly incarnationListeners: IncarnationListener[] = [];
  /** When an unconfirmed member was last confirmed (the sweep holds while this keeps moving). */
  lastConfirm = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly cfg: GossipConfig,
    private readonly stats: GossipStats,
    private readonly host: MembershipHost,
    readonly health: Awareness,
    private incarnation: number,
  ) {
    this.table = new MemberTable(cfg, host.random);
    this.queue = new BroadcastQueue(cfg.maxQueuedMembers);
  }

  get currentIncarnation(): number {
    return this.incarnation;
  }

  memberList(): MemberInfo[] {
    return [...this.table.all()].map(memberInfo);
  }

  /** Live members and us. */
  clusterSize(): number {
    return this.table.liveCount + 1;
  }

  /** How often each update is sent: retransmitMult·ceil(log10(n + 1)). */
  retransmitLimit(): number {
    return this.cfg.retransmitMult * Math.ceil(Math.log10(this.clusterSize() + 1));
  }

  selfUpdate(): MemberUpdate {
    const state = this.host.isLeaving() ? "left" : "alive";
    return { n: this.host.name, a: this.host.addr, i: this.incarnation, s: state };
  }

  membershipHash(): string {
    return this.table.membershipHash(this.host.name, this.incarnation);
  }

  applyHealth(delta: number): void {
    this.health.apply(delta);
    this.stats.healthMax = this.health.peak;
  }

  /** Queue an update for dissemination; deaths and leaves are also forwarded at once. */
  enqueue(u: MemberUpdate): void {
    // nothing about a member forgotten meanwhile (forget() called from a member-change listener)
    if (u.n !== this.host.name && !this.table.has(u.n)) return;
    this.queue.push(u.n, u);
    // Deaths and leaves move routes and gateways: forward them at once (like new rows), not only on
    // the next gossip round. Each member forwards a given death once (repeats are not applied).
    if ((u.s === "dead" || u.s === "left") && u.n !== this.host.name && this.host.isRunning()) {
      const peers = sample(
        this.host.random,
        this.table.reachable().filter((m) => m.name !== u.n),
        this.cfg.fanout,
      );
      for (const p of peers) this.host.send(p.addr, { t: "push", rows: [], m: [u] });
      this.queue.bump(u.n, peers.length, this.retransmitLimit());
    }
  }

  /** Updates for one frame, least sent first. */
  piggyback(): MemberUpdate[] | undefined {
    const m = this.queue.take(this.cfg.maxPiggyback, this.retransmitLimit());
    return m.length > 0 ? m : undefined;
  }

  /** Our full membership state (push-pull), chunked. */
  sendMembers(addr: string, reply: boolean): void {
    const all = [this.selfUpdate(), ...this.table.announced()];
    const chunks = chunk(all, (u) => u.n.length + u.a.length + 40, 5000, this.cfg.chunkBytes);
    chunks.forEach((c, i) => {
      this.host.send(addr, { t: "members", members: c, reply: reply && i === 0 });
    });
  }

  /** Add members not known yet (GossipNode.addMembers); returns those added. */
  add(list: Array<{ name: string; addr: string; confirmed?: boolean }>): Member[] {
    const added: Member[] = [];
    for (const m of list) {
      if (this.table.has(m.name)) continue;
      const confirmed = m.confirmed === true;
      const state = confirmed ? "alive" : "suspect";
      const member = newMember(m.name, m.addr, 0, state, confirmed, this.host.now());
      this.table.add(member);
      added.push(member);
    }
    return added;
  }

  /** Drop a member entirely (GossipNode.forget). Returns whether it was one. */
  forget(name: string): boolean {
    const m = this.table.forget(name, this.host.now());
    if (!m) return false;
    m.suspicion?.cancel();
    m.suspicion = undefined;
    this.queue.delete(name);
    this.stats.forgotten += 1;
    return true;
  }

  /** Stop every suspicion timer (the node stops). */
  stop(): void {
    for (const m of this.table.all()) m.suspicion?.cancel();
  }

  /** After any change of m's state: membership hash, live set, reconnect backoff, listeners. */
  emit(m: Member): void {
    this.table.changed(m);
    if (m.state === "dead") {
      m.retries = 0;
      m.retryAt = m.since + this.cfg.reconnectIntervalMs;
    }
    const info = memberInfo(m);
    for (const cb of this.listeners) cb(m.name, m.state, info);
  }

  /** A member known from the replica only stayed silent (sweep.ts): dead, locally. */
  declareUnconfirmedDead(m: Member): void {
    m.state = "dead";
    m.since = this.host.now();
    this.stats.unconfirmedDeaths += 1;
    this.emit(m);
  }

  /**
   * An authenticated frame from `name`: it is running. An unconfirmed member (never heard from,
   * even if declared dead locally) is confirmed alive at once; an unknown one is learned. A member
   * we hold dead (a verdict that was gossiped), or forgot dead or left, must refute: tell it, at most
   * once per probe interval.
   */
  heard(name: string, addr: string): void {
    const m = this.table.get(name);
    const t = m?.confirmed ? undefined : this.table.recall(name);
    if (t && (t.state === "dead" || t.state === "left")) {
      // Forgotten dead or left: held so, like a dead member we still list, until it refutes (its
      // newer incarnation then re-admits it here and wherever else it was forgotten). A member that
      // is leaving ignores the notice, so its goodbye frames do not bring it back.
      const now = this.host.now();
      if (now - t.noticeAt < this.cfg.probeIntervalMs || this.host.isLeaving()) return;
      t.noticeAt = now;
      this.noticeDead(addr, { name, addr, incarnation: t.incarnation, state: "dead" });
      return;
    }
    if (!m) {
      if (this.host.isLeaving()) return;
      // (forgotten while alive or suspect: back at the incarnation it had)
      const incarnation = t?.incarnation ?? 0;
      const nm = newMember(name, addr, incarnation, "alive", true, this.host.now());
      this.table.insert(nm);
      this.emit(nm);
      this.announce({ name, addr, incarnation, state: "alive" });
      return;
    }
    if (!m.confirmed) {
      this.confirm(m, addr, Math.max(m.incarnation, t?.incarnation ?? 0));
      return;
    }
    if (m.state === "dead") {
      const now = this.host.now();
      if (now - m.noticeAt < this.cfg.probeIntervalMs) return;
      m.noticeAt = now;
      this.noticeDead(addr, { name: m.name, addr: m.addr, incarnation: m.incarnation, state: "dead" });
    }
  }

  applyUpdates(updates: MemberUpdate[], fromSync: boolean): void {
    for (const u of updates) this.apply(u, fromSync);
  }

  /**
   * Membership news (from a peer, a member list, or our own probe), in its wire form: it is passed
   * on as it came (no copy per update: every probe carries some). `fromSync`: part of a full member
   * list, where dead is taken as suspect (the member gets a chance to refute).
   */
  apply(u: MemberUpdate, fromSync: boolean): void {
    const { n: name, a: addr, i: incarnation, s: reported, f: from } = u;
    if (name === this.host.name) {
      if (this.host.isLeaving()) return;
      if (reported === "alive") {
        if (incarnation > this.incarnation) this.refute(incarnation);
      } else if (incarnation >= this.incarnation) this.refute(incarnation);
      return;
    }
    const state = fromSync && reported === "dead" ? "suspect" : reported;
    const m = this.table.get(name);
    if (!m?.confirmed) {
      // alive news of a member we forgot, at the incarnation it was forgotten at or older: a peer
      // that has not learned its death yet (or a stale member list). Not news.
      const t = this.table.recall(name);
      if (state === "alive" && t && incarnation <= t.incarnation) return;
    }
    // SWIM: only alive news creates a member. Suspicion, death or leave of a member we do not know
    // (never heard of, or forgotten) is ignored and not passed on, so a member forgotten everywhere
    // is not resurrected by peers that forget it later than we did.
    if (!m && state !== "alive") return;
    const news = state === reported ? u : { ...u, s: state };
    if (m?.confirmed) {
      this.update(m, news);
      return;
    }
    if (m) {
      // first news of a replica-derived member: a peer has heard from it (only confirmed members
      // are announced), so take the peer's word, whatever our local verdict was
      if (state === "alive") {
        this.confirm(m, addr, incarnation);
        return;
      }
      this.table.replace(m);
    }
    // learn the member and its address (alive news; or bad news of a replica-derived member)
    const nm = newMember(name, addr, incarnation, state, true, this.host.now());
    this.table.insert(nm);
    if (state === "suspect") this.startSuspicion(nm, from);
    this.emit(nm);
    this.enqueue(news);
  }

  /** News about a confirmed member: the SWIM transitions proper. */
  private update(m: Member, u: MemberUpdate): void {
    const { a: addr, i: incarnation, s: state, f: from } = u;
    const now = this.host.now();
    switch (state) {
      case "alive": {
        if (incarnation <= m.incarnation) return;
        const changed = m.state !== "alive";
        m.suspicion?.cancel();
        m.suspicion = undefined;
        m.incarnation = incarnation;
        m.addr = addr;
        this.table.rehash(m);
        if (changed) {
          m.state = "alive";
          m.since = now;
          this.emit(m);
        }
        this.enqueue(u);
        return;
      }
      case "suspect": {
        if (incarnation < m.incarnation || m.state === "dead" || m.state === "left") return;
        if (m.state === "suspect" && incarnation === m.incarnation) {
          if (from && m.suspicion?.confirm(from)) {
            this.armSuspicion(m);
            this.enqueue(u);
          }
          return;
        }
        m.incarnation = incarnation;
        m.state = "suspect";
        m.since = now;
        this.startSuspicion(m, from);
        this.emit(m);
        this.enqueue(u);
        return;
      }
      case "dead":
      case "left": {
        if (incarnation < m.incarnation || m.state === "left" || (m.state === "dead" && state === "dead"))
          return;
        m.suspicion?.cancel();
        m.suspicion = undefined;
        m.incarnation = incarnation;
        m.state = state;
        m.since = now;
        this.emit(m);
        this.enqueue(u);
        return;
      }
    }
  }

  /**
   * First news of an unconfirmed member: it becomes a regular (announced) alive member. Re-gossiped
   * only when the incarnation is news; a bare confirmation reaches the others through member-list
   * push-pulls (the membership hash differs until they have it), far fewer messages than an
   * epidemic per member when a whole fleet starts at once.
   */
  private confirm(m: Member, addr: string, incarnation: number): void {
    const first = this.table.liveCount === 0;
    const news = incarnation > m.incarnation;
    this.table.dropMemory(m.name);
    this.lastConfirm = this.host.now();
    m.suspicion?.cancel();
    m.suspicion = undefined;
    m.confirmed = true;
    m.addr = addr;
    m.incarnation = incarnation;
    m.state = "alive";
    m.since = this.host.now();
    this.emit(m);
    if (news) this.announce({ name: m.name, addr, incarnation, state: "alive" });
    // the first member heard from: full push-pull now (join-like) instead of at the next AE round
    if (first && this.host.isRunning() && !this.host.isLeaving()) this.sendMembers(addr, true);
  }

  private refute(seen: number): void {
    this.incarnation = Math.max(this.incarnation, seen) + 1;
    this.stats.refutations += 1;
    for (const cb of this.incarnationListeners) {
      try {
        cb(this.incarnation);
      } catch {
        // persisting is best effort (a restart then refutes once more); never break the refutation
      }
    }
    // Lifeguard: being suspected is a hint that we are the slow one
    this.applyHealth(1);
    this.enqueue(this.selfUpdate());
  }

  private announce(news: MemberNews): void {
    this.enqueue(toWire(news));
  }

  /** Tell a member that we hold it dead (it talked to us): it refutes with a newer incarnation. */
  private noticeDead(to: string, news: MemberNews): void {
    this.host.send(to, { t: "push", rows: [], m: [toWire(news)] });
  }

  private startSuspicion(m: Member, from: string | undefined): void {
    m.suspicion?.cancel();
    m.suspicion = new Suspicion(this.host.now(), from);
    this.armSuspicion(m);
    // Someone else suspects it: probe it ourselves soon (suspicion.ts, reprobeProbability). A dead
    // member gets its confirmations quickly; a live one acks (and, by the buddy system, refutes).
    if (from !== this.host.name && m.confirmed) {
      const p = reprobeProbability(this.cfg, this.clusterSize());
      if (p > 0 && this.host.random.next() < p) this.table.probeNext(m.name);
    }
  }

  /** (Re)start m's suspicion timer for its current number of independent confirmations. */
  private armSuspicion(m: Member): void {
    const s = m.suspicion;
    if (!s) return;
    const confirmations = s.independentConfirmations;
    const timeout = suspicionTimeout(this.cfg, this.clusterSize(), confirmations);
    // A suspicion no other member has confirmed is stretched by our local health, like probe
    // timeouts: a member too slow to read refutations in time must not declare healthy members
    // dead on its own evidence. Confirmed, the normal timeout applies (docs/gossip.md, "Tuning").
    const deadline = s.start + (confirmations === 0 ? this.health.scale(timeout) : timeout);
    const incarnation = m.incarnation;
    s.rearm(() =>
      this.host.after(Math.max(0, deadline - this.host.now()), () => this.suspicionExpired(m, incarnation)),
    );
  }

  private suspicionExpired(m: Member, incarnation: number): void {
    if (m.state !== "suspect" || m.incarnation !== incarnation) return;
    m.suspicion = undefined;
    m.state = "dead";
    m.since = this.host.now();
    this.stats.deathsDeclared += 1;
    this.emit(m);
    this.announce({ name: m.name, addr: m.addr, incarnation, state: "dead", from: this.host.name });
  }
}
