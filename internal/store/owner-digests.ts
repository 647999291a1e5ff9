/**
 * Per-owner digests of the replica (anti-entropy's summary of what each owner wrote), kept in
 * memory and in the owner_digests table, updated in the same transaction as the rows. An owner's
 * digest is maintained incrementally: a row's hash XORed out, its replacement's XORed in.
 */
import { computeDigests, xorHash, type OwnerDigest, type ReplicatedRow } from "../gossip/index.ts";
import type { Driver, RawStatement } from "./driver.ts";
import { REPLICATED_TABLES } from "./tables.ts";

/** A row's owner, version and rowHash: its contribution to its owner's digest. */
export interface DigestTerm {
  owner: string;
  version: number;
  hash: string;
}

export class OwnerDigests {
  private readonly digests = new Map<string, OwnerDigest>();
  /** Owners changed since the last flush(). */
  private readonly dirty = new Set<string>();
  private readonly maxOfOwner: RawStatement;
  private readonly put: RawStatement;
  private readonly del: RawStatement;

  constructor(private readonly raw: Driver) {
    this.maxOfOwner = raw.prepare(
      `SELECT max(v) AS v FROM (${REPLICATED_TABLES.map((n) => `SELECT max(version) AS v FROM ${n} WHERE owner = ?`).join(" UNION ALL ")})`,
    );
    this.put = raw.prepare(
      "INSERT INTO owner_digests (owner, max_version, count, hash) VALUES (?, ?, ?, ?) ON CONFLICT(owner) DO UPDATE SET max_version = excluded.max_version, count = excluded.count, hash = excluded.hash",
    );
    this.del = raw.prepare("DELETE FROM owner_digests WHERE owner = ?");
  }

  /** One digest per owner that has rows (copies), sorted by owner. */
  list(): OwnerDigest[] {
    return [...this.digests.values()]
      .map((d) => ({ ...d }))
      .sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
  }

  /** The highest version of any owner (0 when empty). */
  maxVersion(): number {
    let max = 0;
    for (const d of this.digests.values()) max = Math.max(max, d.maxVersion);
    return max;
  }

  /**
   * A row was written (already stored): `row` replaced `previous` (same table and key), or was new.
   * When the row moved to another owner and was the newest of its previous owner, that owner's max
   * version is read back from the tables.
   */
  replaced(row: DigestTerm, previous: DigestTerm | undefined): void {
    if (previous && previous.owner === row.owner) {
      const d = this.digests.get(row.owner)!;
      d.hash = xorHash(xorHash(d.hash, previous.hash), row.hash);
      if (row.version > d.maxVersion) d.maxVersion = row.version;
      this.dirty.add(row.owner);
      return;
    }
    if (previous) this.remove(previous);
    this.add(row);
  }

  private add(t: DigestTerm): void {
    const d = this.digests.get(t.owner);
    if (d) {
      d.count += 1;
      d.hash = xorHash(d.hash, t.hash);
      if (t.version > d.maxVersion) d.maxVersion = t.version;
    } else {
      this.digests.set(t.owner, { owner: t.owner, maxVersion: t.version, count: 1, hash: t.hash });
    }
    this.dirty.add(t.owner);
  }

  private remove(t: DigestTerm): void {
    const d = this.digests.get(t.owner);
    if (!d) return;
    d.count -= 1;
    d.hash = xorHash(d.hash, t.hash);
    if (d.count <= 0) {
      this.digests.delete(t.owner);
    } else if (t.version >= d.maxVersion) {
      const args = REPLICATED_TABLES.map(() => t.owner);
      d.maxVersion = Number(this.maxOfOwner.get(...args)?.v ?? 0);
    }
    this.dirty.add(t.owner);
  }

  /** Write the changed owners to owner_digests (inside the rows' transaction). */
  flush(): void {
    for (const owner of this.dirty) {
      const d = this.digests.get(owner);
      if (d) this.put.run(owner, d.maxVersion, d.count, d.hash);
      else this.del.run(owner);
    }
    this.dirty.clear();
  }

  /** (Re)load from owner_digests: at open, and after a rolled back transaction. */
  load(): void {
    this.digests.clear();
    this.dirty.clear();
    for (const r of this.raw.prepare("SELECT owner, max_version, count, hash FROM owner_digests").all()) {
      const owner = String(r.owner);
      this.digests.set(owner, {
        owner,
        maxVersion: Number(r.max_version),
        count: Number(r.count),
        hash: String(r.hash),
      });
    }
  }

  /**
   * Load owner_digests and check it against the rows; rebuild it if it drifted (hand edits).
   * Returns false when it was rebuilt.
   */
  verify(rows: Iterable<ReplicatedRow>): boolean {
    this.load();
    const fresh = computeDigests(rows);
    const same =
      fresh.length === this.digests.size &&
      fresh.every((f) => {
        const d = this.digests.get(f.owner);
        return d && d.count === f.count && d.hash === f.hash && d.maxVersion === f.maxVersion;
      });
    if (same) return true;
    this.raw.transaction(() => {
      this.raw.exec("DELETE FROM owner_digests");
      for (const d of fresh) this.put.run(d.owner, d.maxVersion, d.count, d.hash);
    });
    this.load();
    return false;
  }
}
