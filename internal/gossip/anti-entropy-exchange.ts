/**
 * The anti-entropy exchange of one node: every antiEntropyIntervalMs a random live peer gets the
 * summary (owner digests folded into buckets + membership hash); differing buckets are resolved per
 * owner (the side behind pulls), gaps inside an owner by range reconciliation. The decisions are the
 * pure functions of anti-entropy.ts; this class sends what they return.
 */
import type { OwnerDigest, ReplicatedRow } from "./replicated.ts";
import {
  bucketOf,
  compareOwners,
  compareRanges,
  differingBuckets,
  SummaryMemo,
  summaryBuckets,
} from "./anti-entropy.ts";
import { chunk, rowCost } from "./chunk.ts";
import type { GossipConfig } from "./config.ts";
import type { Member } from "./members.ts";
import type { Message } from "./messages.ts";
import type { RangeDigest, RangeReplicaPort } from "./replica.ts";
import type { GossipStats } from "./stats.ts";

/** What the exchange uses of its node. */
export interface AntiEntropyPort {
  now(): number;
  /** Live members (anti-entropy targets: the alive ones). */
  live(): readonly Member[];
  /** k targets out of xs (uniform, or weighted by reach: MemberTable.pick). */
  pick(xs: readonly Member[], k: number): Member[];
  send(addr: string, m: Message): void;
  membershipHash(): string;
  /** Send our full member list (push-pull; `reply`: ask for theirs). */
  sendMembers(addr: string, reply: boolean): void;
}

type AntiEntropyConfig = Pick<
  GossipConfig,
  "aeBuckets" | "aeSummary" | "fanout" | "gossipIntervalMs" | "chunkBytes" | "rangeParts" | "rangeLeafRows"
>;

/** At most this many ranges per range / rangePull message (LIMITS.rangesPerMessage). */
const RANGES_PER_MESSAGE = 256;

export class AntiEntropyExchange {
  private readonly memo = new SummaryMemo();
  private lastBurst = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly cfg: AntiEntropyConfig,
    private readonly replica: RangeReplicaPort,
    private readonly stats: GossipStats,
    private readonly port: AntiEntropyPort,
  ) {}

  /** Our summary: owner digests XOR-folded into aeBuckets buckets, and the membership hash. */
  summary(): Message {
    const digests = this.replica.digest();
    return {
      t: "ae",
      buckets: summaryBuckets(digests, this.cfg.aeBuckets, this.memo),
      mh: this.port.membershipHash(),
      owners: digests.length,
    };
  }

  /** One periodic round with a random alive peer. */
  round(): void {
    const live = this.port.live().filter((m) => m.state === "alive");
    if (live.length === 0) return;
    // one pick of a uniform sample consumes one random number, as live[randInt(n)] did
    const peer = this.port.pick(live, 1)[0]!;
    this.stats.aeRounds += 1;
    if (this.cfg.aeSummary) {
      this.port.send(peer.addr, this.summary());
    } else {
      // naive mode (bench baseline): every owner digest every round, plus the full member list
      this.port.send(peer.addr, {
        t: "aeOwners",
        buckets: this.allBuckets(),
        digests: this.replica.digest(),
      });
      this.port.sendMembers(peer.addr, false);
    }
  }

  /** Push digest, pull data: start anti-entropy with `fanout` peers now (rate limited). */
  burst(exclude: string | undefined): void {
    const now = this.port.now();
    if (now - this.lastBurst < this.cfg.gossipIntervalMs / 2) return;
    this.lastBurst = now;
    const peers = this.port.pick(
      this.port.live().filter((m) => m.state === "alive" && m.name !== exclude),
      this.cfg.fanout,
    );
    const summary = this.summary();
    for (const p of peers) this.port.send(p.addr, summary);
  }

  /** A peer's summary: answer with our digests of the buckets that differ. */
  onSummary(addr: string, theirs: string[], membershipHash: string): void {
    if (membershipHash !== this.port.membershipHash()) this.port.sendMembers(addr, true);
    const digests = this.replica.digest();
    const diff = differingBuckets(summaryBuckets(digests, this.cfg.aeBuckets, this.memo), theirs);
    if (diff === null) {
      this.port.send(addr, { t: "aeOwners", buckets: this.allBuckets(), digests });
      return;
    }
    if (diff.length === 0) return;
    const want = new Set(diff);
    this.port.send(addr, {
      t: "aeOwners",
      buckets: diff,
      digests: digests.filter((d) => want.has(this.bucket(d.owner))),
    });
  }

  /** A peer's digests of the buckets that differ: push, pull or reconcile ranges, owner by owner. */
  onOwners(addr: string, buckets: number[], theirs: OwnerDigest[]): void {
    const scope = new Set(buckets);
    const mine = this.replica.digest().filter((d) => scope.has(this.bucket(d.owner)));
    const { actions, wants } = compareOwners(mine, theirs);
    for (const a of actions) {
      if (a.kind === "push") this.sendRows(addr, this.replica.rowsOf(a.owner, a.since));
      else this.startRange(addr, a.digest);
    }
    if (wants.length > 0) this.port.send(addr, { t: "pull", wants });
  }

  onPull(addr: string, wants: Array<{ owner: string; since: number }>): void {
    for (const w of wants) this.sendRows(addr, this.replica.rowsOf(w.owner, w.since));
  }

  /** A peer's digests of version ranges of one owner: exchange the small ones, split the others. */
  onRange(addr: string, owner: string, theirs: RangeDigest[]): void {
    const mine = (lo: number, hi: number, parts: number) => this.rangeDigests(owner, lo, hi, parts);
    const { leaves, deeper } = compareRanges(theirs, mine, this.cfg);
    for (const [lo, hi] of leaves) this.sendRows(addr, this.rowsInRange(owner, lo, hi));
    if (leaves.length > 0) {
      this.port.send(addr, { t: "rangePull", owner, ranges: leaves.slice(0, RANGES_PER_MESSAGE) });
    }
    for (let i = 0; i < deeper.length; i += RANGES_PER_MESSAGE) {
      this.stats.rangeRequests += 1;
      this.port.send(addr, { t: "range", owner, ranges: deeper.slice(i, i + RANGES_PER_MESSAGE) });
    }
  }

  onRangePull(addr: string, owner: string, ranges: Array<[number, number]>): void {
    for (const [lo, hi] of ranges) this.sendRows(addr, this.rowsInRange(owner, lo, hi));
  }

  private allBuckets(): number[] {
    return [...Array(this.cfg.aeBuckets).keys()];
  }

  private bucket(owner: string): number {
    return bucketOf(owner, this.cfg.aeBuckets, this.memo);
  }

  private sendRows(addr: string, rows: ReplicatedRow[]): void {
    for (const c of chunk(rows, rowCost, 10_000, this.cfg.chunkBytes))
      this.port.send(addr, { t: "rows", rows: c });
  }

  private startRange(addr: string, d: OwnerDigest): void {
    this.stats.rangeRequests += 1;
    const ranges = this.rangeDigests(d.owner, -1, d.maxVersion, this.cfg.rangeParts);
    if (!ranges) {
      // replica without range support: exchange the whole owner both ways
      this.sendRows(addr, this.replica.rowsOf(d.owner));
      this.port.send(addr, { t: "pull", wants: [{ owner: d.owner, since: -1 }] });
      return;
    }
    this.port.send(addr, { t: "range", owner: d.owner, ranges });
  }

  private rangeDigests(owner: string, lo: number, hi: number, parts: number): RangeDigest[] | null {
    return this.replica.rangeDigest ? this.replica.rangeDigest(owner, lo, hi, parts) : null;
  }

  private rowsInRange(owner: string, lo: number, hi: number): ReplicatedRow[] {
    if (this.replica.rowsInRange) return this.replica.rowsInRange(owner, lo, hi);
    return this.replica.rowsOf(owner, lo).filter((x) => x.version <= hi);
  }
}
