/**
 * Per-owner digests for anti-entropy (see OwnerDigest in replicated.ts).
 *
 * rowHash = first 8 bytes of SHA-256 over `${table}\0${key}\0${version}\0${deleted}` (UTF-8), as
 * 16 lowercase hex digits. node:crypto gives identical bytes on Bun and Node. An owner's digest hash
 * is the XOR of its rows' hashes ("0000000000000000" for no rows), so it is order independent and
 * can be maintained incrementally (XOR a row out, XOR its replacement in).
 */
import { createHash } from "node:crypto";
import type { OwnerDigest, ReplicatedRow } from "./replicated.ts";

export const ZERO_HASH = "0000000000000000";

/** The 64-bit hash of one replicated row's identity and version, 16 hex digits. */
export function rowHash(row: Pick<ReplicatedRow, "table" | "key" | "version" | "deleted">): string {
  return createHash("sha256")
    .update(`${row.table}\0${row.key}\0${row.version}\0${row.deleted}`)
    .digest("hex")
    .slice(0, 16);
}

/** XOR of two 16-hex-digit hashes. */
export function xorHash(a: string, b: string): string {
  const hi = (Number.parseInt(a.slice(0, 8), 16) ^ Number.parseInt(b.slice(0, 8), 16)) >>> 0;
  const lo = (Number.parseInt(a.slice(8, 16), 16) ^ Number.parseInt(b.slice(8, 16), 16)) >>> 0;
  return hi.toString(16).padStart(8, "0") + lo.toString(16).padStart(8, "0");
}

/** Digests computed from scratch over a set of rows (one per owner, sorted by owner). */
export function computeDigests(rows: Iterable<ReplicatedRow>): OwnerDigest[] {
  const by = new Map<string, OwnerDigest>();
  for (const row of rows) {
    const d = by.get(row.owner) ?? { owner: row.owner, maxVersion: 0, count: 0, hash: ZERO_HASH };
    d.count += 1;
    if (row.version > d.maxVersion) d.maxVersion = row.version;
    d.hash = xorHash(d.hash, rowHash(row));
    by.set(row.owner, d);
  }
  return [...by.values()].sort((a, b) => (a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0));
}
