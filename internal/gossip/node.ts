/**
 * GossipNode: SWIM membership (with Lifeguard-style suspicion), rumor dissemination of replicated
 * rows and membership updates, and anti-entropy against a ReplicaPort. Transport, clock and
 * randomness are injected: the same code runs in the simulator and in the agent.
 */
import type { MemberState } from "../topology/model.ts";
import type { OwnerDigest, ReplicatedRow } from "../store/replicated.ts";
import { Codec } from "./codec.ts";
import { hash64Hex, xorHex, ZERO_HASH } from "./hash.ts";
import type { Envelope, Message, MemberUpdate } from "./messages.ts";
import { type Cancel, type Clock, type Random, randInt, sample, type Transport } from "./ports.ts";
import { BroadcastQueue } from "./queue.ts";
import type { RangeDigest, RangeReplicaPort } from "./replica.ts";

export interface GossipConfig {
  /** SWIM: one probe per interval, round-robin over a shuffled member list. */
  probeIntervalMs: number;
  /** Wait this long for a direct ack before asking `indirectChecks` others. */
  probeTimeoutMs: number;
  indirectChecks: number;
  /** Minimum suspicion timeout = suspicionMult * max(1, log10(n)) * probeIntervalMs. */
  suspicionMult: number;
  /** Maximum suspicion timeout = suspicionMaxMult * minimum; shrinks with independent confirmations. */
  suspicionMaxMult: number;
  /** Dissemination round: pending updates go to `fanout` random members. */
  gossipIntervalMs: number;
  fanout: number;
  /** Each update is sent retransmitMult * ceil(log10(n + 1)) times. */
  retransmitMult: number;
  /** Forward new rows to `fanout` peers as soon as they arrive, not only on the next round. */
  eagerPush: boolean;
  /** Anti-entropy with one random member per interval. */
  antiEntropyIntervalMs: number;
  /** Owner digests are XOR-folded into this many buckets in the anti-entropy summary. */
  aeBuckets: number;
  /** Send the summary only (false: naive, send every owner digest each round). */
  aeSummary: boolean;
  /** Try one dead member per interval (partition heal). */
  reconnectIntervalMs: number;
  joinRetryMs: number;
  /** Grace period after leave() before stopping (the "left" update still propagates). */
  leaveGraceMs: number;
  maxQueuedRows: number;
  maxQueuedMembers: number;
  maxPiggyback: number;
  maxRowsPerPush: number;
  /** Target payload per chunk for rows / member lists (well under the 1 MiB frame limit). */
  chunkBytes: number;
  /** Range reconciliation: split factor, and size under which rows are exchanged directly. */
  rangeParts: number;
  rangeLeafRows: number;
  /** Rows learned by anti-entropy are re-gossiped when at most this many arrive at once. */
  rebroadcastRepairedMax: number;
  /**
   * Change sets larger than this are not pushed row by row: the node starts anti-entropy with
   * `fanout` peers instead (push digest, pull data), so bulk seeds travel once per peer.
   */
  bulkThreshold: number;
}

export const DEFAULT_CONFIG: GossipConfig = {
  probeIntervalMs: 500,
  probeTimeoutMs: 200,
  indirectChecks: 3,
  suspicionMult: 3,
  suspicionMaxMult: 2,
  gossipIntervalMs: 200,
  fanout: 3,
  retransmitMult: 3,
  eagerPush: true,
  antiEntropyIntervalMs: 2000,
  aeBuckets: 16,
  aeSummary: true,
  reconnectIntervalMs: 5000,
  joinRetryMs: 1000,
  leaveGraceMs: 1000,
  maxQueuedRows: 4096,
  maxQueuedMembers: 4096,
  maxPiggyback: 8,
  maxRowsPerPush: 256,
  chunkBytes: 256 * 1024,
  rangeParts: 16,
  rangeLeafRows: 128,
  rebroadcastRepairedMax: 64,
  bulkThreshold: 64,
};

export interface GossipNodeOptions {
  name: string;
  /** Our address as peers reach us (ws URL in the agent, the node name in the simulator). */
  addr: string;
  secret: Uint8Array | string;
  transport: Transport;
  clock: Clock;
  random: Random;
  replica: RangeReplicaPort;
  config?: Partial<GossipConfig>;
  /** Starting incarnation (persist and pass the last one + 1 to avoid a refutation round). */
  incarnation?: number;
  /** Process epoch for replay protection; default clock.now(). Must grow across restarts. */
  epoch?: number;
  /** Members known beforehand (seeded by the controller): assumed alive at incarnation 0. */
  members?: Array<{ name: string; addr: string }>;
  maxFrameBytes?: number;
}

export interface MemberInfo {
  name: string;
  addr: string;
  incarnation: number;
  state: MemberState;
  /** Time of the last state change (clock ms). */
  since: number;
}

interface Member extends MemberInfo {
  suspicion?: { start: number; confirmations: Set<string>; cancel: Cancel };
}

export interface GossipStats {
  probes: number;
  indirectProbes: number;
  suspicionsRaised: number;
  refutations: number;
  deathsDeclared: number;
  rowsReceived: number;
  rowsChanged: number;
  aeRounds: number;
  rangeRequests: number;
  encodeErrors: number;
  messagesIn: Record<string, number>;
}

type MemberListener = (name: string, state: MemberState, info: MemberInfo) => void;
type RowsListener = (rows: ReplicatedRow[], from: string) => void;

const rowId = (r: ReplicatedRow): string => `${r.table}\0${r.key}`;
const rowCost = (r: ReplicatedRow): number => JSON.stringify(r).length + 1;

export class GossipNode {
  readonly name: string;
  readonly addr: string;
  readonly codec: Codec;
  readonly cfg: GossipConfig;
  readonly stats: GossipStats = {
    probes: 0,
    indirectProbes: 0,
    suspicionsRaised: 0,
    refutations: 0,
    deathsDeclared: 0,
    rowsReceived: 0,
    rowsChanged: 0,
    aeRounds: 0,
    rangeRequests: 0,
    encodeErrors: 0,
    messagesIn: {},
  };
  private incarnation: number;
  private readonly members = new Map<string, Member>();
  private readonly memberQ: BroadcastQueue<MemberUpdate>;
  private readonly rowQ: BroadcastQueue<ReplicatedRow>;
  private readonly pending = new Map<number, () => void>();
  private readonly timers = new Set<Cancel>();
  private readonly memberListeners: MemberListener[] = [];
  private readonly rowListeners: RowsListener[] = [];
  private readonly bucketOf = new Map<string, number>();
  private probeOrder: string[] = [];
  private probeIdx = 0;
  private nextId = 1;
  private running = false;
  private leaving = false;
  private memberHash: string | null = null;
  private lastBurst = Number.NEGATIVE_INFINITY;

  constructor(private readonly o: GossipNodeOptions) {
    this.name = o.name;
    this.addr = o.addr;
    this.cfg = { ...DEFAULT_CONFIG, ...o.config };
    this.incarnation = o.incarnation ?? 0;
    this.codec = new Codec({
      secret: o.secret,
      name: o.name,
      addr: o.addr,
      epoch: o.epoch ?? Math.floor(o.clock.now()),
      maxFrameBytes: o.maxFrameBytes,
    });
    this.memberQ = new BroadcastQueue(this.cfg.maxQueuedMembers);
    this.rowQ = new BroadcastQueue(this.cfg.maxQueuedRows);
    for (const m of o.members ?? []) {
      if (m.name === o.name) continue;
      this.members.set(m.name, {
        name: m.name,
        addr: m.addr,
        incarnation: 0,
        state: "alive",
        since: o.clock.now(),
      });
    }
    o.transport.onMessage((bytes) => this.receive(bytes));
  }

  // ---------------------------------------------------------------- public API

  /** Start periodic probing, gossip rounds and anti-entropy; join through `seeds` (addresses). */
  start(seeds: string[] = []): void {
    if (this.running) return;
    this.running = true;
    const c = this.cfg;
    this.every(c.probeIntervalMs, () => this.probe());
    this.every(c.gossipIntervalMs, () => this.gossipRound());
    this.every(c.antiEntropyIntervalMs, () => this.antiEntropy());
    this.every(c.reconnectIntervalMs, () => this.reconnect());
    this.enqueueMember(this.selfUpdate());
    if (seeds.length > 0) this.join(seeds);
  }

  /** Contact seeds (addresses); retried every joinRetryMs until some member is known. */
  join(seeds: string[]): void {
    const others = seeds.filter((s) => s !== this.addr);
    if (others.length === 0) return;
    for (const s of others) {
      this.send(s, { t: "join", inc: this.incarnation });
      this.send(s, this.aeSummary());
    }
    this.after(this.cfg.joinRetryMs, () => {
      if (this.running && !this.leaving && this.liveMembers().length === 0) this.join(others);
    });
  }

  /** Disseminate rows the local agent just wrote (or seeded) in its replica. */
  publish(rows: ReplicatedRow[]): void {
    if (rows.length === 0) return;
    this.disseminate(rows, undefined);
  }

  /** Graceful leave: announce "left", keep gossiping for leaveGraceMs, then stop. */
  leave(): Promise<void> {
    if (!this.running || this.leaving) return Promise.resolve();
    this.leaving = true;
    const u: MemberUpdate = { n: this.name, a: this.addr, i: this.incarnation, s: "left" };
    this.enqueueMember(u);
    for (const m of sample(this.o.random, this.liveMembers(), this.cfg.fanout * 2)) {
      this.send(m.addr, { t: "push", rows: [], m: [u] });
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
    for (const m of this.members.values()) m.suspicion?.cancel();
    this.pending.clear();
  }

  onMemberChange(cb: MemberListener): void {
    this.memberListeners.push(cb);
  }

  /** Rows from peers that changed the local replica (the agent re-plans on these). */
  onRows(cb: RowsListener): void {
    this.rowListeners.push(cb);
  }

  get currentIncarnation(): number {
    return this.incarnation;
  }

  get isRunning(): boolean {
    return this.running;
  }

  memberList(): MemberInfo[] {
    return [...this.members.values()].map(({ name, addr, incarnation, state, since }) => ({
      name,
      addr,
      incarnation,
      state,
      since,
    }));
  }

  memberState(name: string): MemberState | undefined {
    if (name === this.name) return this.leaving ? "left" : "alive";
    return this.members.get(name)?.state;
  }

  /** Pending broadcast items (for tests and metrics). */
  queueSizes(): { rows: number; members: number; rowsDropped: number; membersDropped: number } {
    return {
      rows: this.rowQ.size,
      members: this.memberQ.size,
      rowsDropped: this.rowQ.dropped,
      membersDropped: this.memberQ.dropped,
    };
  }

  // ---------------------------------------------------------------- plumbing

  private every(ms: number, fn: () => void): void {
    // random phase so that nodes started together do not tick together
    const tick = (delay: number): void => {
      const cancel = this.o.clock.setTimer(delay, () => {
        this.timers.delete(cancel);
        if (!this.running) return;
        fn();
        if (this.running) tick(ms);
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

  private liveMembers(): Member[] {
    const out: Member[] = [];
    for (const m of this.members.values()) if (m.state === "alive" || m.state === "suspect") out.push(m);
    return out;
  }

  private clusterSize(): number {
    return this.liveMembers().length + 1;
  }

  private retransmitLimit(): number {
    return this.cfg.retransmitMult * Math.ceil(Math.log10(this.clusterSize() + 1));
  }

  private selfUpdate(): MemberUpdate {
    return { n: this.name, a: this.addr, i: this.incarnation, s: this.leaving ? "left" : "alive" };
  }

  private enqueueMember(u: MemberUpdate): void {
    this.memberQ.push(u.n, u);
  }

  private piggyback(): MemberUpdate[] | undefined {
    const m = this.memberQ.take(this.cfg.maxPiggyback, this.retransmitLimit());
    return m.length > 0 ? m : undefined;
  }

  private emit(m: Member): void {
    this.memberHash = null;
    const info: MemberInfo = {
      name: m.name,
      addr: m.addr,
      incarnation: m.incarnation,
      state: m.state,
      since: m.since,
    };
    for (const cb of this.memberListeners) cb(m.name, m.state, info);
  }

  private chunks<T>(items: T[], cost: (t: T) => number, maxItems: number): T[][] {
    const out: T[][] = [];
    let cur: T[] = [];
    let size = 0;
    for (const it of items) {
      const c = cost(it);
      if (cur.length > 0 && (size + c > this.cfg.chunkBytes || cur.length >= maxItems)) {
        out.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(it);
      size += c;
    }
    if (cur.length > 0) out.push(cur);
    return out;
  }

  private sendRows(addr: string, rows: ReplicatedRow[]): void {
    for (const chunk of this.chunks(rows, rowCost, 10_000)) this.send(addr, { t: "rows", rows: chunk });
  }

  // ---------------------------------------------------------------- receive

  private receive(bytes: Uint8Array): void {
    if (!this.running) return;
    const env = this.codec.tryDecode(bytes);
    if (!env || env.f === this.name) return;
    const t = env.m.t;
    this.stats.messagesIn[t] = (this.stats.messagesIn[t] ?? 0) + 1;
    this.dispatch(env);
  }

  private dispatch(env: Envelope): void {
    const m = env.m;
    switch (m.t) {
      case "ping":
        if (m.m) this.applyUpdates(m.m, false);
        if (m.to !== this.name) return;
        this.send(env.a, { t: "ack", id: m.id, m: this.piggyback() });
        return;
      case "ack": {
        if (m.m) this.applyUpdates(m.m, false);
        const cb = this.pending.get(m.id);
        if (cb) {
          this.pending.delete(m.id);
          cb();
        }
        return;
      }
      case "pingReq": {
        this.stats.indirectProbes += 1;
        const id = this.nextId++;
        this.pending.set(id, () => this.send(env.a, { t: "ack", id: m.id }));
        this.after(this.cfg.probeIntervalMs, () => this.pending.delete(id));
        this.send(m.addr, { t: "ping", id, to: m.target });
        return;
      }
      case "join":
        this.applyUpdate({ n: env.f, a: env.a, i: m.inc, s: "alive" }, false);
        this.sendMembers(env.a, false);
        return;
      case "members":
        this.applyUpdates(m.members, true);
        if (m.reply) this.sendMembers(env.a, false);
        return;
      case "push":
        if (m.m) this.applyUpdates(m.m, false);
        if (m.rows.length > 0) this.onPushRows(m.rows as ReplicatedRow[], env.f);
        return;
      case "rows":
        this.onRepairRows(m.rows as ReplicatedRow[], env.f);
        return;
      case "ae":
        this.onAeSummary(env.a, m.buckets, m.mh);
        return;
      case "aeOwners":
        this.onAeOwners(env.a, m.buckets, m.digests);
        return;
      case "pull":
        for (const w of m.wants) this.sendRows(env.a, this.o.replica.rowsOf(w.owner, w.since));
        return;
      case "range":
        this.onRange(env.a, m.owner, m.ranges);
        return;
      case "rangePull":
        for (const [lo, hi] of m.ranges) this.sendRows(env.a, this.rowsInRange(m.owner, lo, hi));
        return;
    }
  }

  // ---------------------------------------------------------------- SWIM

  private probe(): void {
    if (this.leaving) return;
    let target: Member | undefined;
    for (let tries = 0; tries < 2 && !target; tries++) {
      while (this.probeIdx < this.probeOrder.length) {
        const m = this.members.get(this.probeOrder[this.probeIdx++]!);
        if (m && (m.state === "alive" || m.state === "suspect")) {
          target = m;
          break;
        }
      }
      if (!target) {
        this.probeOrder = sample(this.o.random, [...this.members.keys()], this.members.size);
        this.probeIdx = 0;
      }
    }
    if (!target) return;
    const tgt = target;
    this.stats.probes += 1;
    const id = this.nextId++;
    let acked = false;
    this.pending.set(id, () => {
      acked = true;
    });
    this.send(tgt.addr, { t: "ping", id, to: tgt.name, m: this.piggyback() });
    this.after(this.cfg.probeTimeoutMs, () => {
      if (acked || !this.running) return;
      const helpers = sample(
        this.o.random,
        this.liveMembers().filter((m) => m.name !== tgt.name && m.state === "alive"),
        this.cfg.indirectChecks,
      );
      for (const h of helpers) this.send(h.addr, { t: "pingReq", id, target: tgt.name, addr: tgt.addr });
    });
    this.after(Math.max(this.cfg.probeTimeoutMs + 1, this.cfg.probeIntervalMs - 1), () => {
      this.pending.delete(id);
      if (acked || !this.running) return;
      const cur = this.members.get(tgt.name);
      // a failed probe of a suspect counts as an independent confirmation (Lifeguard)
      if (!cur || (cur.state !== "alive" && cur.state !== "suspect")) return;
      this.stats.suspicionsRaised += 1;
      this.applyUpdate({ n: cur.name, a: cur.addr, i: cur.incarnation, s: "suspect", f: this.name }, false);
    });
  }

  private applyUpdates(us: MemberUpdate[], fromSync: boolean): void {
    for (const u of us) this.applyUpdate(u, fromSync);
  }

  private refute(seen: number): void {
    this.incarnation = Math.max(this.incarnation, seen) + 1;
    this.stats.refutations += 1;
    this.memberHash = null;
    this.enqueueMember(this.selfUpdate());
  }

  private applyUpdate(u: MemberUpdate, fromSync: boolean): void {
    const now = this.o.clock.now();
    if (u.n === this.name) {
      if (this.leaving) return;
      if (u.s === "alive") {
        if (u.i > this.incarnation) this.refute(u.i);
      } else if (u.i >= this.incarnation) this.refute(u.i);
      return;
    }
    const state = fromSync && u.s === "dead" ? "suspect" : u.s;
    const m = this.members.get(u.n);
    if (!m) {
      // learn the member (and its address) even when the first news is bad: it may come back
      const nm: Member = { name: u.n, addr: u.a, incarnation: u.i, state, since: now };
      this.members.set(u.n, nm);
      if (state === "suspect") this.startSuspicion(nm, u.f);
      this.emit(nm);
      this.enqueueMember({ ...u, s: state });
      return;
    }
    switch (state) {
      case "alive": {
        if (u.i <= m.incarnation) return;
        const changed = m.state !== "alive";
        m.suspicion?.cancel();
        m.suspicion = undefined;
        m.incarnation = u.i;
        m.addr = u.a;
        this.memberHash = null;
        if (changed) {
          m.state = "alive";
          m.since = now;
          this.emit(m);
        }
        this.enqueueMember(u);
        return;
      }
      case "suspect": {
        if (u.i < m.incarnation || m.state === "dead" || m.state === "left") return;
        if (m.state === "suspect" && u.i === m.incarnation) {
          if (u.f && m.suspicion && !m.suspicion.confirmations.has(u.f)) {
            m.suspicion.confirmations.add(u.f);
            this.rescheduleSuspicion(m);
            this.enqueueMember({ ...u, s: "suspect" });
          }
          return;
        }
        m.incarnation = u.i;
        m.state = "suspect";
        m.since = now;
        this.startSuspicion(m, u.f);
        this.emit(m);
        this.enqueueMember({ ...u, s: "suspect" });
        return;
      }
      case "dead":
      case "left": {
        if (u.i < m.incarnation || m.state === "left" || (m.state === "dead" && state === "dead")) return;
        m.suspicion?.cancel();
        m.suspicion = undefined;
        m.incarnation = u.i;
        m.state = state;
        m.since = now;
        this.emit(m);
        this.enqueueMember(u);
        return;
      }
    }
  }

  private suspicionBounds(): { min: number; max: number } {
    const n = this.clusterSize();
    const min = this.cfg.suspicionMult * Math.max(1, Math.log10(n)) * this.cfg.probeIntervalMs;
    return { min, max: min * this.cfg.suspicionMaxMult };
  }

  private suspicionTimeout(confirmations: number): number {
    const { min, max } = this.suspicionBounds();
    const k = this.cfg.indirectChecks;
    if (k < 1 || max <= min) return min;
    const frac = Math.log(confirmations + 1) / Math.log(k + 1);
    return Math.max(min, max - (max - min) * frac);
  }

  private startSuspicion(m: Member, from: string | undefined): void {
    m.suspicion?.cancel();
    const confirmations = new Set<string>();
    if (from) confirmations.add(from);
    const start = this.o.clock.now();
    m.suspicion = { start, confirmations, cancel: () => {} };
    this.rescheduleSuspicion(m);
  }

  private rescheduleSuspicion(m: Member): void {
    const s = m.suspicion;
    if (!s) return;
    s.cancel();
    // the first suspecter does not count as an independent confirmation
    const c = Math.max(0, s.confirmations.size - 1);
    const remaining = Math.max(0, s.start + this.suspicionTimeout(c) - this.o.clock.now());
    const inc = m.incarnation;
    s.cancel = this.after(remaining, () => {
      if (m.state !== "suspect" || m.incarnation !== inc) return;
      m.suspicion = undefined;
      m.state = "dead";
      m.since = this.o.clock.now();
      this.stats.deathsDeclared += 1;
      this.emit(m);
      this.enqueueMember({ n: m.name, a: m.addr, i: inc, s: "dead", f: this.name });
    });
  }

  private fullMembers(): MemberUpdate[] {
    const out: MemberUpdate[] = [this.selfUpdate()];
    for (const m of this.members.values()) out.push({ n: m.name, a: m.addr, i: m.incarnation, s: m.state });
    return out;
  }

  private sendMembers(addr: string, reply: boolean): void {
    const all = this.fullMembers();
    const chunks = this.chunks(all, (u) => u.n.length + u.a.length + 40, 5000);
    chunks.forEach((c, i) => {
      this.send(addr, { t: "members", members: c, reply: reply && i === 0 });
    });
  }

  private membershipHash(): string {
    if (this.memberHash === null) {
      let h = hash64Hex(`${this.name}\0${this.incarnation}\0alive`);
      for (const m of this.members.values())
        h = xorHex(h, hash64Hex(`${m.name}\0${m.incarnation}\0${m.state}`));
      this.memberHash = h;
    }
    return this.memberHash;
  }

  private reconnect(): void {
    const dead = [...this.members.values()].filter((m) => m.state === "dead");
    if (dead.length === 0) return;
    const m = dead[randInt(this.o.random, dead.length)]!;
    this.send(m.addr, this.aeSummary());
  }

  // ---------------------------------------------------------------- dissemination

  private gossipRound(): void {
    if (this.rowQ.size === 0 && this.memberQ.size === 0) return;
    const peers = sample(this.o.random, this.liveMembers(), this.cfg.fanout);
    const limit = this.retransmitLimit();
    for (const p of peers) {
      const rows = this.rowQ.take(this.cfg.maxRowsPerPush, limit, rowCost, this.cfg.chunkBytes);
      const m = this.piggyback();
      if (rows.length === 0 && !m) break;
      this.send(p.addr, { t: "push", rows, m });
    }
  }

  private eager(rows: ReplicatedRow[], exclude: string | undefined): void {
    const peers = sample(
      this.o.random,
      this.liveMembers().filter((m) => m.name !== exclude),
      this.cfg.fanout,
    );
    if (peers.length === 0) return;
    const limit = this.retransmitLimit();
    const chunks = this.chunks(rows, rowCost, this.cfg.maxRowsPerPush);
    for (const p of peers) for (const c of chunks) this.send(p.addr, { t: "push", rows: c, m: undefined });
    for (const r of rows) this.rowQ.bump(rowId(r), peers.length, limit);
  }

  private merge(rows: ReplicatedRow[], from: string): ReplicatedRow[] {
    this.stats.rowsReceived += rows.length;
    const changed = this.o.replica.merge(rows);
    if (changed.length > 0) {
      this.stats.rowsChanged += changed.length;
      for (const cb of this.rowListeners) cb(changed, from);
    }
    return changed;
  }

  private disseminate(rows: ReplicatedRow[], from: string | undefined): void {
    if (rows.length > this.cfg.bulkThreshold) {
      this.aeBurst(from);
      return;
    }
    for (const r of rows) this.rowQ.push(rowId(r), r);
    if (this.cfg.eagerPush) this.eager(rows, from);
  }

  /** Push digest, pull data: start anti-entropy with `fanout` peers now (rate limited). */
  private aeBurst(exclude: string | undefined): void {
    const now = this.o.clock.now();
    if (now - this.lastBurst < this.cfg.gossipIntervalMs / 2) return;
    this.lastBurst = now;
    const peers = sample(
      this.o.random,
      this.liveMembers().filter((m) => m.state === "alive" && m.name !== exclude),
      this.cfg.fanout,
    );
    const summary = this.aeSummary();
    for (const p of peers) this.send(p.addr, summary);
  }

  private onPushRows(rows: ReplicatedRow[], from: string): void {
    const changed = this.merge(rows, from);
    if (changed.length > 0) this.disseminate(changed, from);
  }

  private onRepairRows(rows: ReplicatedRow[], from: string): void {
    const changed = this.merge(rows, from);
    if (changed.length > this.cfg.bulkThreshold) this.aeBurst(from);
    else if (changed.length > 0 && changed.length <= this.cfg.rebroadcastRepairedMax) {
      for (const r of changed) this.rowQ.push(rowId(r), r);
    }
  }

  // ---------------------------------------------------------------- anti-entropy

  private bucket(owner: string): number {
    let b = this.bucketOf.get(owner);
    if (b === undefined) {
      b = Number.parseInt(hash64Hex(owner).slice(0, 8), 16) % this.cfg.aeBuckets;
      this.bucketOf.set(owner, b);
    }
    return b;
  }

  private buckets(digests: OwnerDigest[]): string[] {
    const out = new Array<string>(this.cfg.aeBuckets).fill(ZERO_HASH);
    for (const d of digests) {
      const b = this.bucket(d.owner);
      out[b] = xorHex(out[b]!, hash64Hex(`${d.owner}\0${d.maxVersion}\0${d.count}\0${d.hash}`));
    }
    return out;
  }

  private aeSummary(): Message {
    const digests = this.o.replica.digest();
    return { t: "ae", buckets: this.buckets(digests), mh: this.membershipHash(), owners: digests.length };
  }

  private antiEntropy(): void {
    if (this.leaving) return;
    const live = this.liveMembers().filter((m) => m.state === "alive");
    if (live.length === 0) return;
    const peer = live[randInt(this.o.random, live.length)]!;
    this.stats.aeRounds += 1;
    if (this.cfg.aeSummary) {
      this.send(peer.addr, this.aeSummary());
    } else {
      // naive mode (bench baseline): every owner digest every round, plus the full member list
      const all = [...Array(this.cfg.aeBuckets).keys()];
      this.send(peer.addr, { t: "aeOwners", buckets: all, digests: this.o.replica.digest() });
      this.sendMembers(peer.addr, false);
    }
  }

  private onAeSummary(addr: string, theirs: string[], mh: string): void {
    if (mh !== this.membershipHash()) this.sendMembers(addr, true);
    const digests = this.o.replica.digest();
    const mine = this.buckets(digests);
    if (theirs.length !== mine.length) {
      const all = [...Array(this.cfg.aeBuckets).keys()];
      this.send(addr, { t: "aeOwners", buckets: all, digests });
      return;
    }
    const diff: number[] = [];
    for (let i = 0; i < mine.length; i++) if (mine[i] !== theirs[i]) diff.push(i);
    if (diff.length === 0) return;
    const want = new Set(diff);
    this.send(addr, {
      t: "aeOwners",
      buckets: diff,
      digests: digests.filter((d) => want.has(this.bucket(d.owner))),
    });
  }

  private onAeOwners(addr: string, buckets: number[], theirs: OwnerDigest[]): void {
    const scope = new Set(buckets);
    const mine = new Map<string, OwnerDigest>();
    for (const d of this.o.replica.digest()) if (scope.has(this.bucket(d.owner))) mine.set(d.owner, d);
    const wants: Array<{ owner: string; since: number }> = [];
    for (const t of theirs) {
      const m = mine.get(t.owner);
      mine.delete(t.owner);
      if (!m || m.maxVersion < t.maxVersion) {
        wants.push({ owner: t.owner, since: m ? m.maxVersion : -1 });
      } else if (m.maxVersion > t.maxVersion) {
        this.sendRows(addr, this.o.replica.rowsOf(t.owner, t.maxVersion));
      } else if (m.hash !== t.hash || m.count !== t.count) {
        this.startRange(addr, m);
      }
    }
    // owners the peer does not have at all
    for (const m of mine.values()) this.sendRows(addr, this.o.replica.rowsOf(m.owner));
    if (wants.length > 0) this.send(addr, { t: "pull", wants });
  }

  private rangeDigests(owner: string, lo: number, hi: number, parts: number): RangeDigest[] | null {
    const r = this.o.replica;
    return r.rangeDigest ? r.rangeDigest(owner, lo, hi, parts) : null;
  }

  private rowsInRange(owner: string, lo: number, hi: number): ReplicatedRow[] {
    const r = this.o.replica;
    if (r.rowsInRange) return r.rowsInRange(owner, lo, hi);
    return r.rowsOf(owner, lo).filter((x) => x.version <= hi);
  }

  private startRange(addr: string, d: OwnerDigest): void {
    this.stats.rangeRequests += 1;
    const ranges = this.rangeDigests(d.owner, -1, d.maxVersion, this.cfg.rangeParts);
    if (!ranges) {
      // replica without range support: exchange the whole owner both ways
      this.sendRows(addr, this.o.replica.rowsOf(d.owner));
      this.send(addr, { t: "pull", wants: [{ owner: d.owner, since: -1 }] });
      return;
    }
    this.send(addr, { t: "range", owner: d.owner, ranges });
  }

  private onRange(addr: string, owner: string, theirs: RangeDigest[]): void {
    const leaves: Array<[number, number]> = [];
    const deeper: RangeDigest[] = [];
    for (const t of theirs) {
      const mine = this.rangeDigests(owner, t.lo, t.hi, 1)?.[0] ?? null;
      if (mine && mine.hash === t.hash && mine.count === t.count) continue;
      const small =
        !mine || t.count + mine.count <= this.cfg.rangeLeafRows || t.hi - t.lo <= this.cfg.rangeParts;
      if (small) {
        leaves.push([t.lo, t.hi]);
        this.sendRows(addr, this.rowsInRange(owner, t.lo, t.hi));
      } else {
        const sub = this.rangeDigests(owner, t.lo, t.hi, this.cfg.rangeParts);
        if (sub) deeper.push(...sub);
      }
    }
    if (leaves.length > 0) this.send(addr, { t: "rangePull", owner, ranges: leaves.slice(0, 256) });
    for (let i = 0; i < deeper.length; i += 256) {
      this.stats.rangeRequests += 1;
      this.send(addr, { t: "range", owner, ranges: deeper.slice(i, i + 256) });
    }
  }
}
