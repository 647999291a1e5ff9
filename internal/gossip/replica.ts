import type { ReplicaPort, ReplicatedRow } from "../store/replicated.ts";

/** Digest of the rows of one owner whose version is in (lo, hi]. */
export interface RangeDigest {
  lo: number;
  hi: number;
  count: number;
  hash: string;
}

/**
 * ReplicaPort plus two OPTIONAL methods (additive extension) that let anti-entropy repair gaps
 * inside a big owner (the controller's 100k seed rows) without resending everything.
 * Without them the gossip layer falls back to rowsOf(owner) (everything of that owner).
 */
export interface RangeReplicaPort extends ReplicaPort {
  /** Split (lo, hi] into `parts` equal-width version ranges; one digest per range (empty ones too). */
  rangeDigest?(owner: string, lo: number, hi: number, parts: number): RangeDigest[];
  /** Rows of `owner` with lo < version <= hi, ascending by version. */
  rowsInRange?(owner: string, lo: number, hi: number): ReplicatedRow[];
}

/** Equal-width split of (lo, hi] into at most `parts` non-empty ranges (shared by both sides). */
export function splitRange(lo: number, hi: number, parts: number): Array<[number, number]> {
  const width = hi - lo;
  if (width <= 0) return [];
  const n = Math.max(1, Math.min(parts, width));
  const out: Array<[number, number]> = [];
  let prev = lo;
  for (let i = 1; i <= n; i++) {
    const b = i === n ? hi : lo + Math.floor((width * i) / n);
    if (b > prev) out.push([prev, b]);
    prev = b;
  }
  return out;
}
