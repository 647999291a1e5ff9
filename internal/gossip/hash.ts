/**
 * Portable 64-bit FNV-1a over UTF-8, as 16 hex digits: cheap hashing of owner digests into
 * anti-entropy buckets and of the membership view. Row hashes come from digest.ts.
 */
const enc = new TextEncoder();

export function fnv1a64(s: string): [number, number] {
  // 64-bit FNV-1a with four 16-bit limbs (h3 most significant).
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  const bytes = enc.encode(s);
  for (let i = 0; i < bytes.length; i++) {
    h0 ^= bytes[i]!;
    // multiply by prime 0x100000001b3 = 2^40 + 0x1b3
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3;
    const t2 = h2 * 0x1b3;
    const t3 = h3 * 0x1b3;
    // + (h << 40): h0 goes into limb 2 shifted by 8, h1 into limb 3 shifted by 8
    const a2 = t2 + (h0 << 8);
    const a3 = t3 + (h1 << 8);
    const c1 = t1 + (t0 >>> 16);
    h0 = t0 & 0xffff;
    const c2 = a2 + (c1 >>> 16);
    h1 = c1 & 0xffff;
    h3 = (a3 + (c2 >>> 16)) & 0xffff;
    h2 = c2 & 0xffff;
  }
  return [((h3 << 16) | h2) >>> 0, ((h1 << 16) | h0) >>> 0];
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}

export function hash64Hex(s: string): string {
  const [hi, lo] = fnv1a64(s);
  return hex8(hi) + hex8(lo);
}

/** A 64-bit value given as two unsigned 32-bit halves, as 16 hex digits. */
export function hex64(hi: number, lo: number): string {
  return hex8(hi >>> 0) + hex8(lo >>> 0);
}

/**
 * The per-row hash of the OwnerDigest contract, shared with the SQLite store so digests of the
 * in-memory and SQLite replicas are comparable.
 */
export { rowHash } from "./digest.ts";

/** XOR of two 16-hex-digit hashes. */
export function xorHex(a: string, b: string): string {
  const hi = (Number.parseInt(a.slice(0, 8), 16) ^ Number.parseInt(b.slice(0, 8), 16)) >>> 0;
  const lo = (Number.parseInt(a.slice(8), 16) ^ Number.parseInt(b.slice(8), 16)) >>> 0;
  return hex8(hi) + hex8(lo);
}

export { ZERO_HASH } from "./digest.ts";
