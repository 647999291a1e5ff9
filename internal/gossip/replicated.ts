/**
 * The unit of replication. Every replicated table row maps to one of these.
 * Merge is last-writer-wins on (version, owner): see `wins`.
 */
export interface ReplicatedRow {
  /** Logical table: "clusters" | "nodes" | "members" | ... */
  table: string;
  /** Primary key within the table (e.g. the cluster or node name). */
  key: string;
  /** Who may write this row: a node name, or "controller" for cluster rows. */
  owner: string;
  /** Hybrid logical clock version (see hlc.ts). */
  version: number;
  /** Tombstone: the row was deleted (data is null). */
  deleted: boolean;
  /** The row's fields (JSON object), null for tombstones. */
  data: Record<string, unknown> | null;
}

/** Deterministic LWW order: true when `a` must replace `b`. Ties on version break by owner name. */
export function wins(
  a: Pick<ReplicatedRow, "version" | "owner">,
  b: Pick<ReplicatedRow, "version" | "owner">,
): boolean {
  if (a.version !== b.version) return a.version > b.version;
  return a.owner > b.owner;
}

/** The owner name the controller (or lab) writes cluster/seed rows with. */
export const CONTROLLER_OWNER = "controller";

/**
 * Summary of everything one owner wrote, for anti-entropy. `hash` is order independent (XOR of a
 * 64-bit hash of `${table}\0${key}\0${version}\0${deleted}` per row, as 16 hex digits), so two replicas
 * holding the same rows of an owner have equal digests whatever order they received them in.
 */
export interface OwnerDigest {
  owner: string;
  maxVersion: number;
  count: number;
  hash: string;
}

/**
 * What the gossip layer needs from a replica (SQLite store in the agent, in-memory in the simulator).
 */
export interface ReplicaPort {
  /** One digest per owner that has rows (tombstones included). */
  digest(): OwnerDigest[];
  /** Rows of one owner with version > sinceVersion (default: all), ascending by version. */
  rowsOf(owner: string, sinceVersion?: number): ReplicatedRow[];
  /**
   * Merge remote rows (LWW per (table, key) using `wins`). Rows an owner is not allowed to write are
   * rejected. Returns the rows that changed local state.
   */
  merge(rows: ReplicatedRow[]): ReplicatedRow[];
}
