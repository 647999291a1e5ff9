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
export function wins(a: Pick<ReplicatedRow, "version" | "owner">, b: Pick<ReplicatedRow, "version" | "owner">): boolean {
  if (a.version !== b.version) return a.version > b.version;
  return a.owner > b.owner;
}

/** The owner name the controller (or lab) writes cluster/seed rows with. */
export const CONTROLLER_OWNER = "controller";
