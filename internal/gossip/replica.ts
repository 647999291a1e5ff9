import type { RangeDigest } from "./ranges.ts";
import type { ReplicaPort, ReplicatedRow } from "./replicated.ts";

export { type RangeDigest, splitRange } from "./ranges.ts";

/**
 * ReplicaPort plus the two methods that let anti-entropy repair gaps inside a big owner (the
 * controller's 100k seed rows) without resending everything. The SQLite store and MemoryReplica
 * implement both (the store imports this port and the pure digest functions from gossip/index.ts); a replica without them gets the whole owner exchanged both ways (rowsOf), which
 * the gossip bench uses as its baseline.
 */
export interface RangeReplicaPort extends ReplicaPort {
  /** Split (lo, hi] into `parts` equal-width version ranges; one digest per range (empty ones too). */
  rangeDigest?(owner: string, lo: number, hi: number, parts: number): RangeDigest[];
  /** Rows of `owner` with lo < version <= hi, ascending by version. */
  rowsInRange?(owner: string, lo: number, hi: number): ReplicatedRow[];
}
