import type { RangeDigest } from "../store/ranges.ts";
import type { ReplicaPort, ReplicatedRow } from "../store/replicated.ts";

/** Range digests are computed by the store's pure functions (internal/store/ranges.ts). */
export { type RangeDigest, splitRange } from "../store/ranges.ts";

/**
 * ReplicaPort plus the two methods that let anti-entropy repair gaps inside a big owner (the
 * controller's 100k seed rows) without resending everything. The SQLite store and MemoryReplica
 * implement both; a replica without them gets the whole owner exchanged both ways (rowsOf), which
 * the gossip bench uses as its baseline.
 */
export interface RangeReplicaPort extends ReplicaPort {
  /** Split (lo, hi] into `parts` equal-width version ranges; one digest per range (empty ones too). */
  rangeDigest?(owner: string, lo: number, hi: number, parts: number): RangeDigest[];
  /** Rows of `owner` with lo < version <= hi, ascending by version. */
  rowsInRange?(owner: string, lo: number, hi: number): ReplicatedRow[];
}
