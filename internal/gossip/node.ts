/**
 * GossipNode: SWIM membership with Lifeguard (local health multiplier, nacks, buddy system,
 * suspicion timeouts shrinking with independent confirmations), rumor dissemination of replicated
 * rows and membership updates, and anti-entropy against a ReplicaPort. Transport, clock and
 * randomness are injected: the same code runs in the simulator and in the agent.
 *
 * Members known from the replica (`members` option) start *unconfirmed*: never probed by SWIM,
 * never a gossip/anti-entropy target and never announced to others until heard from (a frame
 * from them, or an update about them from a peer). They are pinged at a bounded rate and declared
 * dead locally after `unconfirmedTimeoutMs` if they never answer. Dead members are contacted again
 * with a per-member exponential backoff under a per-tick budget (docs/gossip.md).
 *
 * Membership follows the topology through two calls of the owner (the agent): `addMembers` (a node
 * added to the topology, or added back: unconfirmed, as in the `members` option) and `forget` (a
 * node removed from it: dropped entirely). Only *alive* news creates a member: suspicion, death or
 * leave of a member we do not know is ignored (memberlist does the same), so peers that forget later
 * than we did cannot resurrect a forgotten member by gossiping its death. Alive news of a forgotten
 * member at an incarnation no newer than the one it was forgotten at is stale and ignored too; alive
 * news at a newer incarnation adds it again, and so does a frame from the member itself (one
 * forgotten dead or left is first told so, and comes back when it refutes; see forget()).
 */
import type { MemberState } from "../topology/model.ts";
import type { OwnerDigest, ReplicatedRow } from "../store/replicated.ts";
import { Codec } from "./codec.ts";
import { fnv1a64, hash64Hex, hex64, xorHex, ZERO_HASH } from "./hash.ts";
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
  /** Independent confirmations that bring the suspicion timeout down to its minimum (capped at n - 2). */
  suspicionK: number;
  /**
   * Lifeguard: local health multiplier (probe interval and timeout scale by score + 1), nacks from
   * indirect-probe helpers, buddy system (a suspect is told in the probe), confirmation-shrinking
   * suspicion. false: classic SWIM with a fixed suspicion timeout (the minimum) — bench baseline.
   */
  lifeguard: boolean;
  /** Health score bound: the score stays in [0, awarenessMaxMultiplier - 1] (memberlist: 8). */
  awarenessMaxMultiplier: number;
  /** Replica-derived members never heard from are declared dead (locally) after this long. */
  unconfirmedTimeoutMs: number;
  /** ... and only after this many direct pings went unanswered. */
  unconfirmedPings: number;
  /**
   * Pings to unconfirmed members per second, sent with the probe ticks (bounds the start-up cost of
   * a large replica, and the connection attempts a transport opens to addresses nobody answers at).
   */
  unconfirmedPingsPerSec: number;
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
  /**
   * Reconnect tick (partition heal, re-admission): each tick contacts up to `reconnectPerTick` dead
   * members that were heard from before and one never heard from, each only when its own backoff
   * (reconnectIntervalMs doubling up to reconnectMaxMs) is due.
   */
  reconnectIntervalMs: number;
  reconnectMaxMs: number;
  reconnectPerTick: number;
  /**
   * How long forget() remembers a forgotten member's incarnation (alive news at or below it is
   * stale: a peer that has not yet learned the death). Bounded to maxQueuedMembers entries.
   */
  forgetMemoryMs: number;
  /** Join retries to seeds while no member is alive: joinRetryMs doubling up to reconnectMaxMs. */
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
  suspicionK: 3,
  lifeguard: true,
  awarenessMaxMultiplier: 8,
  unconfirmedTimeoutMs: 10_000,
  unconfirmedPings: 2,
  unconfirmedPingsPerSec: 32,
  gossipIntervalMs: 200,
  fanout: 3,
  retransmitMult: 3,
  eagerPush: true,
  antiEntropyIntervalMs: 2000,
  aeBuckets: 16,
  aeSummary: true,
  reconnectIntervalMs: 5000,
  reconnectMaxMs: 60_000,
  reconnectPerTick: 2,
  forgetMemoryMs: 300_000,
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
  /**
   * Members known beforehand (the replica's topology, seeded by the controller): *unconfirmed*
   * until heard from, reported as `suspect` (`confirmed: false`), declared dead locally if they
   * never answer (see the class comment). `confirmed: true`: the caller knows it is running (a
   * settled fleet in a benchmark); it starts alive like a member heard from.
   */
  members?: Array<{ name: string; addr: string; confirmed?: boolean }>;
  maxFrameBytes?: number;
}

export interface MemberInfo {
  name: string;
  addr: string;
  incarnation: number;
  state: MemberState;
  /** Time of the last state change (clock ms). */
  since: number;
  /**
   * Heard from (a frame from it, or an update about it from a peer). false: known from the replica
   * only; its state is local and never announced.
   */
  confirmed: boolean;
}

interface Member extends MemberInfo {
  suspicion?: { start: number; confirmations: Set<string>; cancel: Cancel };
  /** Unanswered direct pings while unconfirmed, and when the last was sent. */
  pings: number;
  lastPing: number;
  /** Reconnect attempts since it died, and when the next is due. */
  retries: number;
  retryAt: number;
  /** Last time it was told that it is dead (it talked to us while dead). */
  noticeAt: number;
  /** Its term in the membership hash (ZERO_HASH while unconfirmed: not announced). */
  hc: string;
}

export interface GossipStats {
  probes: number;
  /** Probes that got no ack by the deadline (direct and indirect). */
  probesFailed: number;
  indirectProbes: number;
  nacksSent: number;
  nacksReceived: number;
  suspicionsRaised: number;
  refutations: number;
  deathsDeclared: number;
  /** Pings to unconfirmed (replica-derived, never heard from) members, and those declared dead. */
  unconfirmedPings: number;
  unconfirmedDeaths: number;
  /** Contacts of dead members (partition heal / re-admission). */
  reconnects: number;
  /** Members dropped by forget(). */
  forgotten: number;
  /** Highest Lifeguard local health score reached. */
  healthMax: number;
  rowsReceived: number;
  rowsChanged: number;
  aeRounds: number;
  rangeRequests: number;
  encodeErrors: number;
  messagesIn: Record<string, number>;
}

/** What forget() remembers of a member heard from before (see GossipNode.forget). */
interface Forgotten {
  inc: number;
  state: MemberState;
  at: number;
  /** Last time it was told that it is dead (it talked to us while forgotten dead or left). */
  noticeAt: number;
}

type MemberListener = (name: string, state: MemberState, info: MemberInfo) => void;
type RowsListener = (rows: ReplicatedRow[], from: string) => void;
type IncarnationListener = (incarnation: number) => void;

const rowId = (r: ReplicatedRow): string => `${r.table}\0${r.key}`;
/** Confirmed and alive or suspect: probed, and a gossip / anti-entropy / helper target. */
const isLive = (m: Member): boolean => m.confirmed && (m.state === "alive" || m.state === "suspect");
/** A helper nacks after this fraction of its probe timeout (the Lifeguard paper uses 80%). */
const NACK_RATIO = 0.8;
const rowCost = (r: ReplicatedRow): number => JSON.stringify(r).length + 1;

export class GossipNode {
  readonly name: string;
  readonly addr: string;
  readonly codec: Codec;
  readonly cfg: GossipConfig;
  readonly stats: GossipStats = {
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    nacksSent: 0,
    nacksReceived: 0,
    suspicionsRaised: 0,
    refutations: 0,
    deathsDeclared: 0,
    unconfirmedPings: 0,
    unconfirmedDeaths: 0,
    reconnects: 0,
    forgotten: 0,
    healthMax: 0,
    rowsReceived: 0,
    rowsChanged: 0,
    aeRounds: 0,
    rangeRequests: 0,
    encodeErrors: 0,
    messagesIn: {},
  };
  private incarnation: number;
  private readonly members = new Map<string, Member>();
  /**
   * Forgotten members (forget()) heard from before: their incarnation and state then. Insertion
   * order = age (pruned from the front). Only the member itself, or alive news at a newer
   * incarnation, brings one back (see the class comment).
   */
  private readonly forgotten = new Map<string, Forgotten>();
  private readonly memberQ: BroadcastQueue<MemberUpdate>;
  private readonly rowQ: BroadcastQueue<ReplicatedRow>;
  private readonly pending = new Map<number, () => void>();
  private readonly nackHandlers = new Map<number, () => void>();
  /** Lifeguard local health score (0 = healthy): probe interval and timeout scale by health + 1. */
  private health = 0;
  /** Unconfirmed members in sweep order (lazily pruned), and the sweep cursor. */
  private unconfirmed: string[] = [];
  private sweepIdx = 0;
  private startedAt = 0;
  /** When an unconfirmed member was last confirmed (the sweep holds while this keeps moving). */
  private lastConfirm = Number.NEGATIVE_INFINITY;
  private joinDelay = 0;
  private readonly timers = new Set<Cancel>();
  private readonly memberListeners: MemberListener[] = [];
  private readonly rowListeners: RowsListener[] = [];
  private readonly incarnationListeners: IncarnationListener[] = [];
  private readonly bucketOf = new Map<string, number>();
  private readonly termOf = new Map<string, { v: number; c: number; h: string; hi: number; lo: number }>();
  private probeOrder: string[] = [];
  /** Suspects to probe before resuming the round robin (see startSuspicion). */
  private readonly probeSoon = new Set<string>();
  private probeIdx = 0;
  private nextId = 1;
  private running = false;
  private leaving = false;
  /** XOR of the members' hash terms (membershipHash() adds our own). */
  private hashAcc = ZERO_HASH;
  private liveCache: Member[] | null = null;
  /** Names of the live members (kept by emit(): every change of liveness is emitted). */
  private readonly liveNames = new Set<string>();
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
    this.addKnown(o.members ?? []);
    this.unconfirmed = sample(o.random, this.unconfirmed, this.unconfirmed.length);
    o.transport.onMessage((bytes) => this.receive(bytes));
  }

  // ---------------------------------------------------------------- public API

  /** Start periodic probing, gossip rounds and anti-entropy; join through `seeds` (addresses). */
  start(seeds: string[] = []): void {
    if (this.running) return;
    this.running = true;
    const c = this.cfg;
    this.startedAt = this.o.clock.now();
    this.probeLoop();
    this.every(c.gossipIntervalMs, () => this.gossipRound());
    this.every(c.antiEntropyIntervalMs, () => this.antiEntropy());
    this.every(c.reconnectIntervalMs, () => this.reconnect());
    this.enqueueMember(this.selfUpdate());
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
      this.send(s, { t: "join", inc: this.incarnation });
      this.send(s, this.aeSummary());
    }
    this.joinDelay = Math.min(
      this.cfg.reconnectMaxMs,
      this.joinDelay === 0 ? this.cfg.joinRetryMs : this.joinDelay * 2,
    );
    this.after(this.joinDelay, () => {
      if (this.running && !this.leaving && this.liveNames.size === 0) this.join(others);
      else this.joinDelay = 0;
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
    this.nackHandlers.clear();
  }

  /**
   * Add members known from the replica after construction (a node added to the topology, or added
   * back after forget()): each one that is not a member yet is added as with the `members` option —
   * unconfirmed (swept, declared dead locally if it stays silent `unconfirmedTimeoutMs` after being
   * added), or alive with `confirmed: true`. Existing members are left as they are. Returns the names
   * added. No member-change event: nothing was heard about them yet.
   */
  addMembers(list: Array<{ name: string; addr: string; confirmed?: boolean }>): string[] {
    const added = this.addKnown(list);
    if (added.some((n) => this.members.get(n)?.confirmed)) this.liveCache = null;
    return added;
  }

  /**
   * Drop a member entirely: its state, suspicion timer, probe slot, sweep slot, queued updates about
   * it and its term in the membership hash; memberList() no longer lists it, and no member-change
   * event is emitted (the caller removes it from its own views). For a node removed from the
   * topology once it is dead or has left (the agent never forgets a live member: its process still
   * runs). A member heard from before is remembered for `forgetMemoryMs` as (incarnation, state):
   * alive news at that incarnation or older (a peer that has not learned the death yet) does not
   * bring it back, nor does any suspect/dead/left news (unknown members are never created from bad
   * news). Alive news at a newer incarnation does. A frame from the member itself: forgotten alive
   * or suspect, it is back at once; forgotten dead or left, it is told it is dead (as a dead member
   * that talks to us is) and is back once it refutes with a newer incarnation — which re-admits it
   * wherever else it was forgotten too. (A leaving member ignores the notice: its goodbye frames
   * do not bring it back.) Returns whether it was a member.
   */
  forget(name: string): boolean {
    const m = this.members.get(name);
    if (!m) return false;
    m.suspicion?.cancel();
    m.suspicion = undefined;
    this.members.delete(name);
    this.hashAcc = xorHex(this.hashAcc, m.hc);
    m.hc = ZERO_HASH;
    if (this.liveNames.delete(name)) this.liveCache = null;
    this.probeSoon.delete(name);
    this.memberQ.delete(name);
    // probeOrder and the sweep list drop the name lazily (both skip names that are not members)
    const now = this.o.clock.now();
    this.forgotten.delete(name);
    if (m.confirmed) {
      this.forgotten.set(name, {
        inc: m.incarnation,
        state: m.state,
        at: now,
        noticeAt: Number.NEGATIVE_INFINITY,
      });
    }
    this.pruneForgotten(now);
    this.stats.forgotten += 1;
    return true;
  }

  onMemberChange(cb: MemberListener): void {
    this.memberListeners.push(cb);
  }

  /** Rows from peers that changed the local replica (the agent re-plans on these). */
  onRows(cb: RowsListener): void {
    this.rowListeners.push(cb);
  }

  /**
   * Our own incarnation went up (a refutation). The agent persists it so that after a restart it
   * starts above every incarnation peers may still hold for it, and needs no refutation round.
   */
  onIncarnation(cb: IncarnationListener): void {
    this.incarnationListeners.push(cb);
  }

  get currentIncarnation(): number {
    return this.incarnation;
  }

  /** Members heard from and alive or suspect (what SWIM probes and gossip targets). */
  get liveCount(): number {
    return this.liveNames.size;
  }

  /** Lifeguard local health score (0 = healthy, up to awarenessMaxMultiplier - 1). */
  get localHealth(): number {
    return this.health;
  }

  get isRunning(): boolean {
    return this.running;
  }

  memberList(): MemberInfo[] {
    return [...this.members.values()].map(this.info);
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

  /** Add members not known yet (constructor, addMembers); returns the names added. */
  private addKnown(list: Array<{ name: string; addr: string; confirmed?: boolean }>): string[] {
    const added: string[] = [];
    for (const m of list) {
      if (m.name === this.name || this.members.has(m.name)) continue;
      const confirmed = m.confirmed === true;
      const nm = this.newMember(m.name, m.addr, 0, confirmed ? "alive" : "suspect", confirmed);
      this.members.set(m.name, nm);
      if (confirmed) {
        this.forgotten.delete(m.name);
        this.rehash(nm);
        this.liveNames.add(nm.name);
      } else this.unconfirmed.push(m.name);
      added.push(m.name);
    }
    return added;
  }

  /** Drop forget() tombstones older than forgetMemoryMs, and the oldest beyond maxQueuedMembers. */
  private pruneForgotten(now: number): void {
    for (const [name, t] of this.forgotten) {
      if (now - t.at < this.cfg.forgetMemoryMs && this.forgotten.size <= this.cfg.maxQueuedMembers) break;
      this.forgotten.delete(name);
    }
  }

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

  /**
   * Confirmed alive/suspect members: probe, gossip and anti-entropy targets. Cached (every change of
   * liveness goes through emit(), which drops the cache); callers must not modify the array.
   */
  private liveMembers(): readonly Member[] {
    if (this.liveCache === null) {
      const out: Member[] = [];
      for (const name of this.liveNames) {
        const m = this.members.get(name);
        if (m) out.push(m);
      }
      this.liveCache = out;
    }
    return this.liveCache;
  }

  private newMember(name: string, addr: string, inc: number, state: MemberState, confirmed: boolean): Member {
    return {
      name,
      addr,
      incarnation: inc,
      state,
      since: this.o.clock.now(),
      confirmed,
      pings: 0,
      lastPing: 0,
      retries: 0,
      retryAt: 0,
      noticeAt: Number.NEGATIVE_INFINITY,
      hc: ZERO_HASH,
    };
  }

  private readonly info = (m: Member): MemberInfo => ({
    name: m.name,
    addr: m.addr,
    incarnation: m.incarnation,
    state: m.state,
    since: m.since,
    confirmed: m.confirmed,
  });

  /** Lifeguard: scale a probe duration by the local health score. */
  private scaled(ms: number): number {
    return ms * (this.health + 1);
  }

  private applyHealth(delta: number): void {
    if (!this.cfg.lifeguard || delta === 0) return;
    this.health = Math.max(0, Math.min(this.cfg.awarenessMaxMultiplier - 1, this.health + delta));
    if (this.health > this.stats.healthMax) this.stats.healthMax = this.health;
  }

  private clusterSize(): number {
    return this.liveNames.size + 1;
  }

  private retransmitLimit(): number {
    return this.cfg.retransmitMult * Math.ceil(Math.log10(this.clusterSize() + 1));
  }

  private selfUpdate(): MemberUpdate {
    return { n: this.name, a: this.addr, i: this.incarnation, s: this.leaving ? "left" : "alive" };
  }

  private enqueueMember(u: MemberUpdate): void {
    // nothing about a member forgotten meanwhile (forget() called from a member-change listener)
    if (u.n !== this.name && !this.members.has(u.n)) return;
    this.memberQ.push(u.n, u);
    // Deaths and leaves move routes and gateways: forward them at once (like new rows), not only on
    // the next gossip round. Each member forwards a given death once (repeats are not applied).
    if ((u.s === "dead" || u.s === "left") && u.n !== this.name && this.running) {
      const peers = sample(
        this.o.random,
        this.liveMembers().filter((m) => m.name !== u.n),
        this.cfg.fanout,
      );
      for (const p of peers) this.send(p.addr, { t: "push", rows: [], m: [u] });
      this.memberQ.bump(u.n, peers.length, this.retransmitLimit());
    }
  }

  private piggyback(): MemberUpdate[] | undefined {
    const m = this.memberQ.take(this.cfg.maxPiggyback, this.retransmitLimit());
    return m.length > 0 ? m : undefined;
  }

  /** Update m's term in the membership hash after a change of its incarnation, state or confirmation. */
  private rehash(m: Member): void {
    const h = m.confirmed ? hash64Hex(`${m.name}\0${m.incarnation}\0${m.state}`) : ZERO_HASH;
    if (h === m.hc) return;
    this.hashAcc = xorHex(this.hashAcc, xorHex(m.hc, h));
    m.hc = h;
  }

  private emit(m: Member): void {
    this.rehash(m);
    this.liveCache = null;
    if (isLive(m)) {
      if (!this.liveNames.has(m.name)) {
        this.liveNames.add(m.name);
        // newly live (confirmed, or back): put it at a random place of what is left of the probe
        // round, or a member heard of late would wait a whole round (memberlist does the same)
        const order = this.probeOrder;
        const at = this.probeIdx + randInt(this.o.random, order.length - this.probeIdx + 1);
        order.push(order[at] ?? m.name);
        order[at] = m.name;
      }
    } else this.liveNames.delete(m.name);
    if (m.state === "dead") {
      m.retries = 0;
      m.retryAt = m.since + this.cfg.reconnectIntervalMs;
    }
    const info = this.info(m);
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
    this.heard(env.f, env.a);
    this.dispatch(env);
  }

  /**
   * An authenticated frame from `name`: it is running. An unconfirmed member (never heard from,
   * even if declared dead locally) is confirmed alive at once; an unknown one is learned. A member
   * we hold dead (a verdict that was gossiped), or forgot dead or left, must refute: tell it, at most
   * once per probe interval.
   */
  private heard(name: string, addr: string): void {
    const m = this.members.get(name);
    const t = m?.confirmed ? undefined : this.forgotten.get(name);
    if (t && (t.state === "dead" || t.state === "left")) {
      // Forgotten dead or left: held so, like a dead member we still list, until it refutes (its
      // newer incarnation then re-admits it here and wherever else it was forgotten). A member that
      // is leaving ignores the notice, so its goodbye frames do not bring it back.
      const now = this.o.clock.now();
      if (now - t.noticeAt < this.cfg.probeIntervalMs || this.leaving) return;
      t.noticeAt = now;
      this.send(addr, { t: "push", rows: [], m: [{ n: name, a: addr, i: t.inc, s: "dead" }] });
      return;
    }
    if (!m) {
      if (this.leaving) return;
      // (forgotten while alive or suspect: back at the incarnation it had)
      const inc = t?.inc ?? 0;
      const nm = this.newMember(name, addr, inc, "alive", true);
      this.forgotten.delete(name);
      this.members.set(name, nm);
      this.emit(nm);
      this.enqueueMember({ n: name, a: addr, i: inc, s: "alive" });
      return;
    }
    if (!m.confirmed) {
      this.confirm(m, addr, Math.max(m.incarnation, t?.inc ?? 0));
      return;
    }
    if (m.state === "dead") {
      const now = this.o.clock.now();
      if (now - m.noticeAt < this.cfg.probeIntervalMs) return;
      m.noticeAt = now;
      this.send(addr, { t: "push", rows: [], m: [{ n: m.name, a: m.addr, i: m.incarnation, s: "dead" }] });
    }
  }

  /**
   * First news of an unconfirmed member: it becomes a regular (announced) alive member. Re-gossiped
   * only when the incarnation is news; a bare confirmation reaches the others through member-list
   * push-pulls (the membership hash differs until they have it), far fewer messages than an
   * epidemic per member when a whole fleet starts at once.
   */
  private confirm(m: Member, addr: string, inc: number): void {
    const first = this.liveNames.size === 0;
    const news = inc > m.incarnation;
    this.forgotten.delete(m.name);
    this.lastConfirm = this.o.clock.now();
    m.suspicion?.cancel();
    m.suspicion = undefined;
    m.confirmed = true;
    m.addr = addr;
    m.incarnation = inc;
    m.state = "alive";
    m.since = this.o.clock.now();
    this.emit(m);
    if (news) this.enqueueMember({ n: m.name, a: addr, i: inc, s: "alive" });
    // the first member heard from: full push-pull now (join-like) instead of at the next AE round
    if (first && this.running && !this.leaving) this.sendMembers(addr, true);
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
      case "nack": {
        const cb = this.nackHandlers.get(m.id);
        if (cb) cb();
        return;
      }
      case "pingReq": {
        this.stats.indirectProbes += 1;
        const id = this.nextId++;
        let acked = false;
        this.pending.set(id, () => {
          acked = true;
          this.send(env.a, { t: "ack", id: m.id });
        });
        this.after(this.cfg.probeIntervalMs, () => this.pending.delete(id));
        this.send(m.addr, { t: "ping", id, to: m.target });
        if (m.nack) {
          // Lifeguard: the asker waits (its probe interval - its probe timeout); answer well before
          this.after(Math.max(1, Math.floor(this.cfg.probeTimeoutMs * NACK_RATIO)), () => {
            if (acked || !this.running) return;
            this.stats.nacksSent += 1;
            this.send(env.a, { t: "nack", id: m.id });
          });
        }
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

  /** The probe tick: its period is the probe interval scaled by the local health (Lifeguard). */
  private probeLoop(): void {
    const tick = (delay: number): void => {
      const cancel = this.o.clock.setTimer(delay, () => {
        this.timers.delete(cancel);
        if (!this.running) return;
        this.probe();
        this.sweepUnconfirmed();
        if (this.running) tick(this.scaled(this.cfg.probeIntervalMs));
      });
      this.timers.add(cancel);
    };
    tick(Math.max(1, Math.floor(this.o.random.next() * this.cfg.probeIntervalMs)));
  }

  private probe(): void {
    if (this.leaving) return;
    let target: Member | undefined;
    for (const name of this.probeSoon) {
      this.probeSoon.delete(name);
      const m = this.members.get(name);
      if (m && isLive(m) && m.state === "suspect") {
        target = m;
        break;
      }
    }
    for (let tries = 0; tries < 2 && !target; tries++) {
      while (this.probeIdx < this.probeOrder.length) {
        const m = this.members.get(this.probeOrder[this.probeIdx++]!);
        if (m && isLive(m)) {
          target = m;
          break;
        }
      }
      if (!target) {
        // A round covers the live members only: emit() inserts one that becomes live into what is
        // left of the round, and only live members are probed. Shuffling every member instead (dead
        // and never-heard-from ones included) cost an isolated agent with 1,006 dead members a scan
        // and a shuffle of all of them twice per probe tick (~14 ms/s of interpreted JS).
        this.probeOrder = sample(this.o.random, [...this.liveNames], this.liveNames.size);
        this.probeIdx = 0;
      }
    }
    if (!target) return;
    const tgt = target;
    const lifeguard = this.cfg.lifeguard;
    const interval = this.scaled(this.cfg.probeIntervalMs);
    const timeout = this.scaled(this.cfg.probeTimeoutMs);
    this.stats.probes += 1;
    const id = this.nextId++;
    let acked = false;
    let nacks = 0;
    let expectedNacks = 0;
    this.pending.set(id, () => {
      if (acked) return;
      acked = true;
      this.applyHealth(-1);
    });
    let m = this.piggyback();
    if (lifeguard && tgt.state === "suspect") {
      // buddy system: tell the suspect directly, so it refutes now instead of when gossip reaches it
      const buddy: MemberUpdate = {
        n: tgt.name,
        a: tgt.addr,
        i: tgt.incarnation,
        s: "suspect",
        f: this.name,
      };
      m = [buddy, ...(m ?? []).filter((u) => u.n !== tgt.name)];
    }
    this.send(tgt.addr, { t: "ping", id, to: tgt.name, m });
    this.after(timeout, () => {
      if (acked || !this.running) return;
      const helpers = sample(
        this.o.random,
        this.liveMembers().filter((x) => x.name !== tgt.name && x.state === "alive"),
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
      this.applyHealth(expectedNacks > 0 ? expectedNacks - Math.min(nacks, expectedNacks) : 1);
      const cur = this.members.get(tgt.name);
      // a failed probe of a suspect counts as an independent confirmation (Lifeguard)
      if (!cur || !isLive(cur)) return;
      this.stats.suspicionsRaised += 1;
      this.applyUpdate({ n: cur.name, a: cur.addr, i: cur.incarnation, s: "suspect", f: this.name }, false);
    };
    this.after(Math.max(timeout + 1, interval - 1), conclude);
  }

  /**
   * Replica-derived members never heard from. Until some member is alive, ping up to
   * unconfirmedPingsPerSec of them (round robin, spread over the probe ticks) to find one. Once one answered, its
   * member list and the push-pulls that follow confirm the others for free: hold while they do (a
   * confirmation in the last anti-entropy interval), at most until unconfirmedTimeoutMs, then give
   * each remaining one unconfirmedPings pings at the same rate, 4 probe intervals apart. Once the
   * timeout has passed, those that stayed silent after their last ping are declared dead —
   * locally, never gossiped (nobody else needs our guess).
   */
  private sweepUnconfirmed(): void {
    if (this.unconfirmed.length === 0 || this.leaving) return;
    const c = this.cfg;
    const now = this.o.clock.now();
    const pending = (m: Member | undefined): m is Member => !!m && !m.confirmed && m.state !== "dead";
    if (now - this.startedAt >= c.unconfirmedTimeoutMs) {
      for (const name of this.unconfirmed) {
        const m = this.members.get(name);
        if (!pending(m) || m.pings < c.unconfirmedPings || now - m.lastPing < c.probeIntervalMs) continue;
        // added after start (addMembers): its own timeout, counted from when it was added
        if (now - m.since < c.unconfirmedTimeoutMs) continue;
        m.state = "dead";
        m.since = now;
        this.stats.unconfirmedDeaths += 1;
        this.emit(m);
      }
    }
    // prune only when the cursor wraps, so that removals do not make it skip members
    if (this.sweepIdx >= this.unconfirmed.length) {
      // (a name forgotten and added back is listed twice until now: keep one)
      const seen = new Set<string>();
      this.unconfirmed = this.unconfirmed.filter((name) => {
        if (seen.has(name) || !pending(this.members.get(name))) return false;
        seen.add(name);
        return true;
      });
      this.sweepIdx = 0;
    }
    const n = this.unconfirmed.length;
    if (n === 0) return;
    // member lists are confirming members: let them (up to the timeout), ping only the leftovers
    const busy = now - this.lastConfirm < c.antiEntropyIntervalMs;
    if (this.liveNames.size > 0 && busy && now - this.startedAt < c.unconfirmedTimeoutMs) return;
    const spacing = 4 * c.probeIntervalMs;
    const perTick = Math.max(
      1,
      Math.round((c.unconfirmedPingsPerSec * this.scaled(c.probeIntervalMs)) / 1000),
    );
    let sent = 0;
    // A tick stops at the end of the list; the next one prunes it and starts over. (Wrapping here
    // instead left the cursor where a tick began once nothing was left to ping, so it was at the end
    // only by chance and the list was never pruned: an agent whose 1,006 replica members had all
    // been declared dead scanned every one of them twice per probe tick, for as long as it ran.)
    for (let scanned = 0; scanned < n && sent < perTick && this.sweepIdx < n; scanned++) {
      const m = this.members.get(this.unconfirmed[this.sweepIdx++]!);
      if (!pending(m) || m.pings >= c.unconfirmedPings || (m.pings > 0 && now - m.lastPing < spacing))
        continue;
      m.pings += 1;
      m.lastPing = now;
      sent += 1;
      this.stats.unconfirmedPings += 1;
      this.send(m.addr, { t: "ping", id: this.nextId++, to: m.name });
    }
  }

  private applyUpdates(us: MemberUpdate[], fromSync: boolean): void {
    for (const u of us) this.applyUpdate(u, fromSync);
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
    if (!m?.confirmed) {
      // alive news of a member we forgot, at the incarnation it was forgotten at or older: a peer
      // that has not learned its death yet (or a stale member list). Not news.
      const t = this.forgotten.get(u.n);
      if (state === "alive" && t && u.i <= t.inc) return;
    }
    // SWIM: only alive news creates a member. Suspicion, death or leave of a member we do not know
    // (never heard of, or forgotten) is ignored and not passed on, so a member forgotten everywhere
    // is not resurrected by peers that forget it later than we did.
    if (!m && state !== "alive") return;
    if (m && !m.confirmed) {
      // first news of a replica-derived member: a peer has heard from it (only confirmed members
      // are announced), so take the peer's word, whatever our local verdict was
      if (state === "alive") {
        this.confirm(m, u.a, u.i);
        return;
      }
      this.members.delete(u.n);
      this.hashAcc = xorHex(this.hashAcc, m.hc);
    }
    if (!m?.confirmed) {
      // learn the member and its address (alive news; or bad news of a replica-derived member)
      this.forgotten.delete(u.n);
      const nm = this.newMember(u.n, u.a, u.i, state, true);
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
        this.rehash(m);
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

  /**
   * Lifeguard suspicion: starts at max and reaches min after k independent confirmations (memberlist
   * suspicion.go); k is capped by the members that could confirm (n minus us and the suspect).
   * Without Lifeguard: a fixed timeout, the minimum (classic SWIM).
   */
  private suspicionTimeout(confirmations: number): number {
    const { min, max } = this.suspicionBounds();
    const k = Math.min(this.cfg.suspicionK, this.clusterSize() - 2);
    if (!this.cfg.lifeguard || k < 1 || max <= min) return min;
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
    // Someone else suspects it: probe it ourselves soon with probability ~2k/n, so that about 2k
    // members check it within a probe interval. A dead member gets its k confirmations (minimum
    // timeout) quickly; a live one just acks (and hears, by the buddy system, that it must refute).
    if (from !== this.name && m.confirmed) {
      const k = Math.min(this.cfg.suspicionK, this.clusterSize() - 2);
      const others = Math.max(1, this.clusterSize() - 2);
      if (k >= 1 && this.o.random.next() < Math.min(1, (2 * k) / others)) this.probeSoon.add(m.name);
    }
  }

  private rescheduleSuspicion(m: Member): void {
    const s = m.suspicion;
    if (!s) return;
    s.cancel();
    // the first suspecter does not count as an independent confirmation
    const c = Math.max(0, s.confirmations.size - 1);
    // Lifeguard's local health also stretches a suspicion no other member has confirmed: a member
    // that cannot hear acks in time (starved, overloaded) would otherwise declare healthy members
    // dead whose refutations it reads too late (simulator, one of 100 agents reading frames 2 s
    // late: it declared a healthy agent dead in 4 of 6 seeds; with the stretch in none). Once
    // another member confirms, the evidence is not only ours: the normal timeout applies (a real
    // crash is confirmed within a probe interval or two, so failover does not wait for a member
    // whose score is still high, e.g. just after its restart). Healthy members (score 0) unchanged.
    const t = this.suspicionTimeout(c);
    const remaining = Math.max(0, s.start + (c === 0 ? this.scaled(t) : t) - this.o.clock.now());
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

  /** What we announce: ourselves and every confirmed member (unconfirmed ones are local only). */
  private fullMembers(): MemberUpdate[] {
    const out: MemberUpdate[] = [this.selfUpdate()];
    for (const m of this.members.values()) {
      if (m.confirmed) out.push({ n: m.name, a: m.addr, i: m.incarnation, s: m.state });
    }
    return out;
  }

  private sendMembers(addr: string, reply: boolean): void {
    const all = this.fullMembers();
    const chunks = this.chunks(all, (u) => u.n.length + u.a.length + 40, 5000);
    chunks.forEach((c, i) => {
      this.send(addr, { t: "members", members: c, reply: reply && i === 0 });
    });
  }

  /** XOR of every announced member's (name, incarnation, state), ourselves included. */
  private membershipHash(): string {
    return xorHex(this.hashAcc, hash64Hex(`${this.name}\0${this.incarnation}\0alive`));
  }

  /**
   * Contact dead members whose backoff is due, oldest due first: up to reconnectPerTick that were
   * heard from before (an anti-entropy summary: a healed partition reconciles through the
   * membership-hash push-pull and each side refutes its death), plus one never heard from (a ping;
   * a node that starts later contacts us itself anyway). Each contact doubles that member's backoff.
   */
  private reconnect(): void {
    if (this.leaving) return;
    const now = this.o.clock.now();
    this.pruneForgotten(now);
    const known: Member[] = [];
    let never: Member | undefined;
    for (const m of this.members.values()) {
      if (m.state !== "dead" || m.retryAt > now) continue;
      if (m.confirmed) known.push(m);
      else if (!never || m.retryAt < never.retryAt) never = m;
    }
    known.sort((a, b) => a.retryAt - b.retryAt);
    const picked = known.slice(0, this.cfg.reconnectPerTick);
    if (never) picked.push(never);
    if (picked.length === 0) return;
    const summary = known.length > 0 ? this.aeSummary() : undefined;
    for (const m of picked) {
      this.stats.reconnects += 1;
      m.retries += 1;
      const backoff = Math.min(
        this.cfg.reconnectMaxMs,
        this.cfg.reconnectIntervalMs * 2 ** Math.min(20, m.retries),
      );
      // jitter (+-25%) so that members that died together are not retried in lockstep
      m.retryAt = now + backoff * (0.75 + this.o.random.next() * 0.5);
      if (m.confirmed && summary) this.send(m.addr, summary);
      else this.send(m.addr, { t: "ping", id: this.nextId++, to: m.name });
    }
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

  /**
   * XOR per bucket of the owners' digest terms (each the FNV-1a of owner, max version, count and
   * hash). Terms are cached per owner until its digest changes: a summary is built for every
   * anti-entropy round sent or received, and most owners do not change between two.
   */
  private buckets(digests: OwnerDigest[]): string[] {
    const n = this.cfg.aeBuckets;
    const hi = new Uint32Array(n);
    const lo = new Uint32Array(n);
    for (const d of digests) {
      let t = this.termOf.get(d.owner);
      if (!t || t.v !== d.maxVersion || t.c !== d.count || t.h !== d.hash) {
        const [a, b] = fnv1a64(`${d.owner}\0${d.maxVersion}\0${d.count}\0${d.hash}`);
        t = { v: d.maxVersion, c: d.count, h: d.hash, hi: a, lo: b };
        this.termOf.set(d.owner, t);
      }
      const k = this.bucket(d.owner);
      hi[k]! ^= t.hi;
      lo[k]! ^= t.lo;
    }
    return Array.from(hi, (x, i) => hex64(x, lo[i]!));
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
