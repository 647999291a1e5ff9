/**
 * The member table of a GossipNode: every member with its SWIM state, the live set (confirmed and
 * alive or suspect: probed, and gossip / anti-entropy / helper targets), the probe order, the
 * members forget() remembers, and the membership hash. No clock and no I/O: times come in as
 * arguments, randomness through the injected Random.
 */
import type { MemberState } from "../topology/index.ts";
import type { GossipConfig } from "./config.ts";
import { hash64Hex, xorHex, ZERO_HASH } from "./hash.ts";
import type { MemberUpdate } from "./messages.ts";
import { type Random, randInt, sample, weightedSample } from "./ports.ts";
import type { Suspicion } from "./suspicion.ts";

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

export interface Member extends MemberInfo {
  suspicion?: Suspicion;
  /** Unanswered direct pings while unconfirmed, and when the last was sent. */
  pings: number;
  lastPing: number;
  /** Reconnect attempts since it died, and when the next is due. */
  retries: number;
  retryAt: number;
  /** Last time it was told that it is dead (it talked to us while dead). */
  noticeAt: number;
  /** Its term in the membership hash (ZERO_HASH while unconfirmed: not announced). */
  hashTerm: string;
}

/** What forget() remembers of a member heard from before (see GossipNode.forget). */
export interface Forgotten {
  incarnation: number;
  state: MemberState;
  at: number;
  /** Last time it was told that it is dead (it talked to us while forgotten dead or left). */
  noticeAt: number;
}

/** A membership update in full words (MemberUpdate is its wire form: n, a, i, s, f). */
export interface MemberNews {
  name: string;
  addr: string;
  incarnation: number;
  state: MemberState;
  /** Who asserts it (suspect / dead): Lifeguard counts independent confirmations by it. */
  from?: string;
}

export function toWire(news: MemberNews): MemberUpdate {
  const u: MemberUpdate = { n: news.name, a: news.addr, i: news.incarnation, s: news.state };
  if (news.from !== undefined) u.f = news.from;
  return u;
}

/** Confirmed and alive or suspect: probed, and a gossip / anti-entropy / helper target. */
export const isLive = (m: Member): boolean => m.confirmed && (m.state === "alive" || m.state === "suspect");

export function newMember(
  name: string,
  addr: string,
  incarnation: number,
  state: MemberState,
  confirmed: boolean,
  now: number,
): Member {
  return {
    name,
    addr,
    incarnation,
    state,
    since: now,
    confirmed,
    pings: 0,
    lastPing: 0,
    retries: 0,
    retryAt: 0,
    noticeAt: Number.NEGATIVE_INFINITY,
    hashTerm: ZERO_HASH,
  };
}

export const memberInfo = (m: Member): MemberInfo => ({
  name: m.name,
  addr: m.addr,
  incarnation: m.incarnation,
  state: m.state,
  since: m.since,
  confirmed: m.confirmed,
});

export class MemberTable {
  private readonly members = new Map<string, Member>();
  /**
   * Forgotten members (forget()) heard from before: their incarnation and state then. Insertion
   * order = age (pruned from the front). Only the member itself, or alive news at a newer
   * incarnation, brings one back.
   */
  private readonly forgotten = new Map<string, Forgotten>();
  /** Names of the live members (kept by changed(): every change of liveness goes through it). */
  private readonly liveNames = new Set<string>();
  private liveCache: Member[] | null = null;
  /** Whether this node can send to a member directly (GossipNode.setReach); default: every member. */
  private reaches: (name: string) => boolean = () => true;
  /** Gossip-target weight (1 / its reachers), when the reach relation counts them; else uniform. */
  private weight: ((m: Member) => number) | undefined;
  private reachFrom: readonly Member[] | null = null;
  private reachCache: readonly Member[] = [];
  private unreachCache: readonly Member[] = [];
  private probeOrder: string[] = [];
  private probeIdx = 0;
  /** Suspects to probe before resuming the round robin (Membership.startSuspicion). */
  private readonly probeSoon = new Set<string>();
  /** XOR of the members' hash terms (membershipHash() adds our own). */
  private hashAcc = ZERO_HASH;

  constructor(
    private readonly cfg: Pick<GossipConfig, "forgetMemoryMs" | "maxQueuedMembers">,
    private readonly random: Random,
  ) {}

  get(name: string): Member | undefined {
    return this.members.get(name);
  }

  has(name: string): boolean {
    return this.members.has(name);
  }

  all(): IterableIterator<Member> {
    return this.members.values();
  }

  /** Add a member; a confirmed one joins the live set (but not the current probe round). */
  add(m: Member): void {
    this.members.set(m.name, m);
    if (m.confirmed) {
      this.dropMemory(m.name);
      this.rehash(m);
      this.liveNames.add(m.name);
      this.liveCache = null;
    }
  }

  /** Insert a member learned from news or a frame (its hash and live state follow in changed()). */
  insert(m: Member): void {
    this.dropMemory(m.name);
    this.members.set(m.name, m);
  }

  /** Forget what forget() remembered of `name` (it is a confirmed member again). */
  dropMemory(name: string): void {
    this.forgotten.delete(name);
  }

  /** Drop an unconfirmed member that is replaced by a confirmed one of the same name. */
  replace(m: Member): void {
    this.members.delete(m.name);
    this.hashAcc = xorHex(this.hashAcc, m.hashTerm);
  }

  /**
   * Drop a member entirely (GossipNode.forget): state, probe slot, hash term. One heard from before
   * is remembered as (incarnation, state) for forgetMemoryMs. The probe order and the sweep list drop
   * the name lazily (both skip names that are not members). Returns the member, if it was one.
   */
  forget(name: string, now: number): Member | undefined {
    const m = this.members.get(name);
    if (!m) return undefined;
    this.members.delete(name);
    this.hashAcc = xorHex(this.hashAcc, m.hashTerm);
    m.hashTerm = ZERO_HASH;
    if (this.liveNames.delete(name)) this.liveCache = null;
    this.probeSoon.delete(name);
    this.forgotten.delete(name);
    if (m.confirmed) {
      this.forgotten.set(name, {
        incarnation: m.incarnation,
        state: m.state,
        at: now,
        noticeAt: Number.NEGATIVE_INFINITY,
      });
    }
    this.pruneForgotten(now);
    return m;
  }

  /** What forget() remembers of `name`, if anything. */
  recall(name: string): Forgotten | undefined {
    return this.forgotten.get(name);
  }

  /** Drop forget() memories older than forgetMemoryMs, and the oldest beyond maxQueuedMembers. */
  pruneForgotten(now: number): void {
    for (const [name, t] of this.forgotten) {
      if (now - t.at < this.cfg.forgetMemoryMs && this.forgotten.size <= this.cfg.maxQueuedMembers) break;
      this.forgotten.delete(name);
    }
  }

  /** Update m's term in the membership hash after a change of its incarnation, state or confirmation. */
  rehash(m: Member): void {
    const h = m.confirmed ? hash64Hex(`${m.name}\0${m.incarnation}\0${m.state}`) : ZERO_HASH;
    if (h === m.hashTerm) return;
    this.hashAcc = xorHex(this.hashAcc, xorHex(m.hashTerm, h));
    m.hashTerm = h;
  }

  /**
   * After any change of m's state: its hash term and the live set. A member that becomes live is put
   * at a random place of what is left of the probe round, or a member heard of late would wait a
   * whole round (memberlist does the same).
   */
  changed(m: Member): void {
    this.rehash(m);
    this.liveCache = null;
    if (isLive(m)) {
      if (!this.liveNames.has(m.name)) {
        this.liveNames.add(m.name);
        const order = this.probeOrder;
        const at = this.probeIdx + randInt(this.random, order.length - this.probeIdx + 1);
        order.push(order[at] ?? m.name);
        order[at] = m.name;
      }
    } else this.liveNames.delete(m.name);
  }

  /** Members heard from and alive or suspect. */
  get liveCount(): number {
    return this.liveNames.size;
  }

  /** The live members. Cached until the next change; callers must not modify the array. */
  live(): readonly Member[] {
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

  /**
   * Set the reach predicate (see GossipNodeOptions.reach) and, optionally, how many members reach a
   * member (weights the gossip targets, pick()).
   */
  setReach(fn: (name: string) => boolean, reachers?: (name: string) => number): void {
    this.reaches = fn;
    this.weight = reachers ? (m) => 1 / Math.max(1, reachers(m.name)) : undefined;
    this.reachFrom = null;
  }

  /**
   * k gossip / anti-entropy targets out of xs: uniform, or — when the reach relation counts
   * reachers — so that a member gets about k of the rumors' sends whoever reaches it. A member that
   * k or fewer members reach is always picked by them (a gateway cluster's LAN-only node: only its
   * own cluster can tell it anything), but never in every slot: one is always drawn from the rest,
   * with weight 1 / reachers, so a gateway with many such members still gossips (and runs
   * anti-entropy, k = 1) with the other clusters.
   */
  pick(xs: readonly Member[], k: number): Member[] {
    const weight = this.weight;
    if (!weight) return sample(this.random, xs, k);
    const sure: Member[] = [];
    const rest: Member[] = [];
    for (const m of xs) (k > 1 && weight(m) * k >= 1 ? sure : rest).push(m);
    const fixed = sure.length >= k ? sample(this.random, sure, k - 1) : sure;
    const drawn = weightedSample(this.random, rest, k - fixed.length, weight);
    // too few others to fill the slots: the sure members left out take them
    const short = k - fixed.length - drawn.length;
    const extra = short > 0 ? sure.filter((m) => !fixed.includes(m)).slice(0, short) : [];
    return [...fixed, ...drawn, ...extra];
  }

  /** The live members this node reaches directly: its probe and gossip targets. Cached like live(). */
  reachable(): readonly Member[] {
    this.splitByReach();
    return this.reachCache;
  }

  /** The live members this node does not reach (DerivedLiveness watches them). Cached like live(). */
  unreachable(): readonly Member[] {
    this.splitByReach();
    return this.unreachCache;
  }

  private splitByReach(): void {
    const live = this.live();
    if (this.reachFrom === live) return;
    this.reachFrom = live;
    const yes: Member[] = [];
    const no: Member[] = [];
    for (const m of live) (this.reaches(m.name) ? yes : no).push(m);
    this.reachCache = yes;
    this.unreachCache = no;
  }

  /** Probe this suspect at the next tick, before the round robin resumes. */
  probeNext(name: string): void {
    this.probeSoon.add(name);
  }

  /**
   * The next member to probe: a suspect queued by probeNext(), else the next live member of the
   * round. A round covers the live members only, shuffled when it starts; a member that becomes
   * live is inserted into what is left of it (changed()). Dead and never-heard-from members are
   * never scanned here (docs/gossip.md, "Probe cycle"), nor members this node cannot reach: those
   * who reach them probe them, and their verdicts arrive by gossip.
   */
  nextProbeTarget(): Member | undefined {
    for (const name of this.probeSoon) {
      this.probeSoon.delete(name);
      const m = this.members.get(name);
      if (m && isLive(m) && m.state === "suspect" && this.reaches(m.name)) return m;
    }
    for (let tries = 0; tries < 2; tries++) {
      while (this.probeIdx < this.probeOrder.length) {
        const m = this.members.get(this.probeOrder[this.probeIdx++]!);
        if (m && isLive(m) && this.reaches(m.name)) return m;
      }
      this.probeOrder = sample(this.random, [...this.liveNames], this.liveNames.size);
      this.probeIdx = 0;
    }
    return undefined;
  }

  /** What we announce besides ourselves: every confirmed member (unconfirmed ones are local only). */
  announced(): MemberUpdate[] {
    const out: MemberUpdate[] = [];
    for (const m of this.members.values()) {
      if (m.confirmed) out.push({ n: m.name, a: m.addr, i: m.incarnation, s: m.state });
    }
    return out;
  }

  /** XOR of every announced member's (name, incarnation, state), ourselves (alive) included. */
  membershipHash(self: string, incarnation: number): string {
    return xorHex(this.hashAcc, hash64Hex(`${self}\0${incarnation}\0alive`));
  }

  /**
   * Dead members whose reconnect backoff is due, oldest due first: up to `perTick` that were heard
   * from before, plus the one never heard from that is due first. `known`: whether any heard-from
   * member was due (they are contacted with an anti-entropy summary).
   */
  dueForReconnect(now: number, perTick: number): { picked: Member[]; known: boolean } {
    const known: Member[] = [];
    let never: Member | undefined;
    for (const m of this.members.values()) {
      if (m.state !== "dead" || m.retryAt > now || !this.reaches(m.name)) continue;
      if (m.confirmed) known.push(m);
      else if (!never || m.retryAt < never.retryAt) never = m;
    }
    known.sort((a, b) => a.retryAt - b.retryAt);
    const picked = known.slice(0, perTick);
    if (never) picked.push(never);
    return { picked, known: known.length > 0 };
  }
}

/**
 * When a dead member is contacted next, after its `retries`-th attempt: reconnectIntervalMs
 * doubling up to reconnectMaxMs, ±25 % jitter (`jitter` uniform in [0, 1)) so that members that
 * died together are not retried in lockstep.
 */
export function nextRetryAt(
  cfg: Pick<GossipConfig, "reconnectIntervalMs" | "reconnectMaxMs">,
  retries: number,
  now: number,
  jitter: number,
): number {
  const backoff = Math.min(cfg.reconnectMaxMs, cfg.reconnectIntervalMs * 2 ** Math.min(20, retries));
  return now + backoff * (0.75 + jitter * 0.5);
}
