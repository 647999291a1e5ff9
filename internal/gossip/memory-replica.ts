/**
 * In-memory ReplicaPort for the simulator and tests: LWW per (table, key) with `wins`, per-owner
 * XOR digests maintained incrementally (same row hash as the SQLite store, see hash.ts).
 */
import { type RangeDigest, rangeDigests, type VersionIndex, versionIndex } from "./ranges.ts";
import { type OwnerDigest, type ReplicatedRow, wins } from "./replicated.ts";
import { rowHash, xorHex, ZERO_HASH } from "./hash.ts";
import type { RangeReplicaPort } from "./replica.ts";

interface OwnerState {
  rows: Map<string, ReplicatedRow>;
  hash: string;
  maxVersion: number;
  sorted: ReplicatedRow[] | null;
  index: VersionIndex | null;
}

export interface MemoryReplicaOptions {
  /** Authorisation: rows for which this returns false are refused by merge (default: accept). */
  allow?: (row: ReplicatedRow) => boolean;
}

export class MemoryReplica implements RangeReplicaPort {
  private readonly rows = new Map<string, ReplicatedRow>();
  private readonly owners = new Map<string, OwnerState>();
  private digestCache: OwnerDigest[] | null = null;

  constructor(private readonly opts: MemoryReplicaOptions = {}) {}

  get size(): number {
    return this.rows.size;
  }

  get(table: string, key: string): ReplicatedRow | undefined {
    return this.rows.get(`${table}\0${key}`);
  }

  all(): ReplicatedRow[] {
    return [...this.rows.values()];
  }

  private owner(name: string): OwnerState {
    let o = this.owners.get(name);
    if (!o) {
      o = { rows: new Map(), hash: ZERO_HASH, maxVersion: 0, sorted: null, index: null };
      this.owners.set(name, o);
    }
    return o;
  }

  merge(rows: ReplicatedRow[]): ReplicatedRow[] {
    const changed: ReplicatedRow[] = [];
    for (const row of rows) {
      if (this.opts.allow && !this.opts.allow(row)) continue;
      const k = `${row.table}\0${row.key}`;
      const cur = this.rows.get(k);
      if (cur && !wins(row, cur)) continue;
      if (cur) {
        const o = this.owner(cur.owner);
        o.rows.delete(k);
        o.hash = xorHex(o.hash, rowHash(cur));
        o.sorted = null;
        o.index = null;
        if (o.rows.size === 0) this.owners.delete(cur.owner);
        else if (cur.version === o.maxVersion) {
          let m = 0;
          for (const r of o.rows.values()) if (r.version > m) m = r.version;
          o.maxVersion = m;
        }
      }
      const copy: ReplicatedRow = { ...row };
      this.rows.set(k, copy);
      const o = this.owner(row.owner);
      o.rows.set(k, copy);
      o.hash = xorHex(o.hash, rowHash(copy));
      if (copy.version > o.maxVersion) o.maxVersion = copy.version;
      o.sorted = null;
      o.index = null;
      changed.push(copy);
    }
    if (changed.length > 0) this.digestCache = null;
    return changed;
  }

  digest(): OwnerDigest[] {
    if (!this.digestCache) {
      this.digestCache = [...this.owners.entries()]
        .map(([owner, o]) => ({ owner, maxVersion: o.maxVersion, count: o.rows.size, hash: o.hash }))
        .sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
    }
    return this.digestCache;
  }

  private sortedRows(owner: string): ReplicatedRow[] {
    const o = this.owners.get(owner);
    if (!o) return [];
    if (!o.sorted) o.sorted = [...o.rows.values()].sort((a, b) => a.version - b.version);
    return o.sorted;
  }

  rowsOf(owner: string, sinceVersion = -1): ReplicatedRow[] {
    return this.sortedRows(owner).filter((r) => r.version > sinceVersion);
  }

  rowsInRange(owner: string, lo: number, hi: number): ReplicatedRow[] {
    return this.sortedRows(owner).filter((r) => r.version > lo && r.version <= hi);
  }

  rangeDigest(owner: string, lo: number, hi: number, parts: number): RangeDigest[] {
    return rangeDigests(this.versionIndex(owner), lo, hi, parts);
  }

  /** The owner's (version, row hash) index, built when first needed after a change. */
  private versionIndex(owner: string): VersionIndex {
    const o = this.owners.get(owner);
    if (!o) return versionIndex([]);
    o.index ??= versionIndex(this.sortedRows(owner).map((r) => ({ version: r.version, hash: rowHash(r) })));
    return o.index;
  }
}
