/**
 * Anti-entropy decisions, pure: the summary a node sends (owner digests XOR-folded into buckets),
 * which buckets differ, what to do about each owner of a differing bucket, and how range
 * reconciliation narrows a gap inside one owner. GossipNode sends what these return.
 */
import type { OwnerDigest } from "./replicated.ts";
import { fnv1a64, hash64Hex, hex64 } from "./hash.ts";
import type { RangeDigest } from "./replica.ts";

/** An owner's term in its bucket: the FNV-1a of (owner, max version, count, hash), as two halves. */
interface OwnerTerm {
  maxVersion: number;
  count: number;
  hash: string;
  hi: number;
  lo: number;
}

/**
 * Memo of owners' buckets and terms. A summary is built for every anti-entropy round sent or
 * received, and most owners do not change between two: a term is recomputed only when its owner's
 * digest changed.
 */
export class SummaryMemo {
  readonly buckets = new Map<string, number>();
  readonly terms = new Map<string, OwnerTerm>();
}

/** The bucket (of `count`) an owner's digest is folded into. */
export function bucketOf(owner: string, count: number, memo?: SummaryMemo): number {
  let b = memo?.buckets.get(owner);
  if (b === undefined) {
    b = Number.parseInt(hash64Hex(owner).slice(0, 8), 16) % count;
    memo?.buckets.set(owner, b);
  }
  return b;
}

function ownerTerm(d: OwnerDigest, memo?: SummaryMemo): OwnerTerm {
  let t = memo?.terms.get(d.owner);
  if (!t || t.maxVersion !== d.maxVersion || t.count !== d.count || t.hash !== d.hash) {
    const [hi, lo] = fnv1a64(`${d.owner}\0${d.maxVersion}\0${d.count}\0${d.hash}`);
    t = { maxVersion: d.maxVersion, count: d.count, hash: d.hash, hi, lo };
    memo?.terms.set(d.owner, t);
  }
  return t;
}

/** The summary: per bucket, the XOR of its owners' terms (16 hex digits each). */
export function summaryBuckets(digests: readonly OwnerDigest[], count: number, memo?: SummaryMemo): string[] {
  const hi = new Uint32Array(count);
  const lo = new Uint32Array(count);
  for (const d of digests) {
    const t = ownerTerm(d, memo);
    const k = bucketOf(d.owner, count, memo);
    hi[k]! ^= t.hi;
    lo[k]! ^= t.lo;
  }
  return Array.from(hi, (x, i) => hex64(x, lo[i]!));
}

/** Indices of the buckets that differ; null when the two summaries are not comparable (sizes). */
export function differingBuckets(mine: readonly string[], theirs: readonly string[]): number[] | null {
  if (theirs.length !== mine.length) return null;
  const diff: number[] = [];
  for (let i = 0; i < mine.length; i++) if (mine[i] !== theirs[i]) diff.push(i);
  return diff;
}

/** One step of resolving an owner, in the order to take them. */
export type OwnerAction =
  /** Send the peer my rows of `owner` newer than `since` (-1: all of them). */
  | { kind: "push"; owner: string; since: number }
  /** Same max version, different rows: a gap on one side or both, reconciled by version ranges. */
  | { kind: "range"; digest: OwnerDigest };

/**
 * Compare my digests of the owners in the differing buckets with the peer's. The side behind pulls
 * (`wants`: owner and my max version, -1 when I have none); the side ahead pushes what the other
 * lacks; equal max versions with different hash or count start range reconciliation; owners the
 * peer does not have at all are pushed whole, after the others.
 */
export function compareOwners(
  mine: readonly OwnerDigest[],
  theirs: readonly OwnerDigest[],
): { actions: OwnerAction[]; wants: Array<{ owner: string; since: number }> } {
  const left = new Map<string, OwnerDigest>();
  for (const d of mine) left.set(d.owner, d);
  const actions: OwnerAction[] = [];
  const wants: Array<{ owner: string; since: number }> = [];
  for (const t of theirs) {
    const m = left.get(t.owner);
    left.delete(t.owner);
    if (!m || m.maxVersion < t.maxVersion) {
      wants.push({ owner: t.owner, since: m ? m.maxVersion : -1 });
    } else if (m.maxVersion > t.maxVersion) {
      actions.push({ kind: "push", owner: t.owner, since: t.maxVersion });
    } else if (m.hash !== t.hash || m.count !== t.count) {
      actions.push({ kind: "range", digest: m });
    }
  }
  for (const m of left.values()) actions.push({ kind: "push", owner: m.owner, since: -1 });
  return { actions, wants };
}

/**
 * My digests of (lo, hi] split into `parts` ranges, or null when the replica cannot compute them
 * (then the whole owner is exchanged).
 */
export type RangeDigests = (lo: number, hi: number, parts: number) => RangeDigest[] | null;

/**
 * Range reconciliation of one owner, one level: each of the peer's ranges that differs from mine is
 * either a leaf (few rows, or a narrow range: rows are exchanged both ways) or split `rangeParts`
 * ways and sent back to compare one level deeper.
 */
export function compareRanges(
  theirs: readonly RangeDigest[],
  mine: RangeDigests,
  cfg: { rangeParts: number; rangeLeafRows: number },
): { leaves: Array<[number, number]>; deeper: RangeDigest[] } {
  const leaves: Array<[number, number]> = [];
  const deeper: RangeDigest[] = [];
  for (const t of theirs) {
    const m = mine(t.lo, t.hi, 1)?.[0] ?? null;
    if (m && m.hash === t.hash && m.count === t.count) continue;
    const small = !m || t.count + m.count <= cfg.rangeLeafRows || t.hi - t.lo <= cfg.rangeParts;
    if (small) leaves.push([t.lo, t.hi]);
    else {
      const sub = mine(t.lo, t.hi, cfg.rangeParts);
      if (sub) deeper.push(...sub);
    }
  }
  return { leaves, deeper };
}
