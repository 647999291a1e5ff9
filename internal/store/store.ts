/**
 * The node-local SQLite replica: what the rest of the agent uses (Store). openStore() in open.ts
 * opens, migrates and recovers the file; SqliteStore (sqlite-store.ts) implements the interface
 * with the pure row checks (checks.ts), per-owner digests (owner-digests.ts), range reconciliation
 * (gossip's pure range functions over a version index) and the local-only tables (local-tables.ts).
 */
import type { Topology } from "../topology/index.ts";
import type { RejectReason } from "./checks.ts";
import type { StoreDb } from "./driver.ts";
import type { HybridClock } from "./hlc.ts";
import type { LocalTables } from "./local-tables.ts";
import type { GatewayClaim } from "./model.ts";
import type { RangeDigest, RangeReplicaPort, ReplicatedRow } from "../gossip/index.ts";
import type { ReplicatedTableName } from "./tables.ts";

export type { RejectReason } from "./checks.ts";
export type { LocalTables } from "./local-tables.ts";

/** Set when the file could not be used and was moved aside: the replica starts empty. */
export interface RecoveryInfo {
  /** Where the unusable file now is (`<path>.corrupt-<timestamp>`). */
  movedTo: string;
  reason: string;
}

export interface StoreStats {
  /** Rows that changed local state via merge(). */
  merged: number;
  /** Remote rows rejected by merge(), per reason. */
  rejected: Record<RejectReason, number>;
}

export type ChangeListener = (rows: ReplicatedRow[]) => void;

/**
 * The replica: the port gossip declares (RangeReplicaPort: per-owner digests, rows, merge, range
 * reconciliation; internal/gossip/replica.ts), local writes and reads, local tables.
 */
export interface Store extends Required<RangeReplicaPort>, LocalTables {
  readonly node: string;
  readonly path: string;
  readonly driver: "bun:sqlite" | "better-sqlite3";
  /** Drizzle database over the same connection (query exec_sessions, workflows, ...). */
  readonly db: StoreDb;
  readonly clock: HybridClock;
  /** Non-null when the previous file was corrupt and moved aside (rebuild from peers). */
  readonly recovered: RecoveryInfo | null;
  readonly stats: StoreStats;

  /** Split (lo, hi] into `parts` equal-width version ranges of `owner`; one digest per range. */
  rangeDigest(owner: string, lo: number, hi: number, parts: number): RangeDigest[];
  /** Rows of `owner` with lo < version <= hi, ascending by version (then table, key). */
  rowsInRange(owner: string, lo: number, hi: number): ReplicatedRow[];
  /** Local write by this node as owner (ticks the clock). null data = delete. Null when nothing changed. */
  writeLocal(
    table: ReplicatedTableName,
    key: string,
    data: Record<string, unknown> | null,
  ): ReplicatedRow | null;
  /** Upsert changed clusters/nodes as `owner`, tombstone that owner's rows no longer present. */
  seed(topology: Topology, owner?: string): ReplicatedRow[];
  /** Current live clusters and nodes, sorted by name. */
  snapshot(): Topology;
  /** One replicated row, tombstones included. */
  get(table: ReplicatedTableName, key: string): ReplicatedRow | undefined;
  /** Every replicated row (tombstones included), sorted by table then key. */
  rows(): ReplicatedRow[];
  /** Gateway claims of live node_status rows (alive or not: the planner filters by liveness). */
  gatewayClaims(): GatewayClaim[];
  onChange(listener: ChangeListener): () => void;
  close(): void;
}
