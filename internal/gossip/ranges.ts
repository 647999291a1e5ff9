/**
 * Range reconciliation inside one owner (pure): digests of the owner's rows whose version falls in
 * (lo, hi], split into equal-width version ranges. Anti-entropy compares them to find a gap among
 * many rows (the controller's 100k seed rows) without resending the owner. Both replicas — the
 * SQLite store and the simulator's in-memory one — compute them with these functions over a
 * VersionIndex, so their digests are equal for equal rows.
 */
/** Digest of the rows of one owner whose version is in (lo, hi]: count and XOR of row hashes. */
export interface RangeDigest {
  lo: number;
  hi: number;
  count: number;
  hash: string;
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

/** One owner's rows as (version, row hash), ascending by version, the hash as two 32-bit halves. */
export interface VersionIndex {
  versions: Float64Array;
  hashHi: Uint32Array;
  hashLo: Uint32Array;
}

/** Index rows given as (version, rowHash hex); sorts them by version. */
export function versionIndex(entries: Array<{ version: number; hash: string }>): VersionIndex {
  const sorted = entries.slice().sort((a, b) => a.version - b.version);
  const n = sorted.length;
  const index: VersionIndex = {
    versions: new Float64Array(n),
    hashHi: new Uint32Array(n),
    hashLo: new Uint32Array(n),
  };
  sorted.forEach((e, i) => {
    index.versions[i] = e.version;
    index.hashHi[i] = Number.parseInt(e.hash.slice(0, 8), 16);
    index.hashLo[i] = Number.parseInt(e.hash.slice(8, 16), 16);
  });
  return index;
}

/** First position whose version is > v (binary search). */
function firstAfter(versions: Float64Array, v: number): number {
  let lo = 0;
  let hi = versions.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (versions[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, "0");

/** One digest per range of splitRange(lo, hi, parts), empty ranges included (count 0, zero hash). */
export function rangeDigests(index: VersionIndex, lo: number, hi: number, parts: number): RangeDigest[] {
  const ranges = splitRange(lo, hi, parts);
  const { versions, hashHi, hashLo } = index;
  const counts = new Array<number>(ranges.length).fill(0);
  const his = new Uint32Array(ranges.length);
  const los = new Uint32Array(ranges.length);
  let r = 0;
  for (let i = firstAfter(versions, lo); i < versions.length && versions[i]! <= hi; i++) {
    while (r < ranges.length && versions[i]! > ranges[r]![1]) r++;
    if (r === ranges.length) break;
    counts[r]! += 1;
    his[r]! ^= hashHi[i]!;
    los[r]! ^= hashLo[i]!;
  }
  return ranges.map(([l, h], k) => ({
    lo: l,
    hi: h,
    count: counts[k]!,
    hash: hex8(his[k]!) + hex8(los[k]!),
  }));
}
