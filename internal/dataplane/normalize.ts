/** Pure helpers that bring addresses into the forms `ip` prints, so desired and actual compare by value. */

/** Canonical (compressed, lowercase) IPv6 text; IPv4 unchanged. */
export function canonAddr(addr: string): string {
  if (!addr.includes(":")) return addr;
  try {
    return new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  } catch {
    return addr.toLowerCase();
  }
}

/** Canonical CIDR; a bare address gets /32 or /128. */
export function canonCidr(cidr: string): string {
  const [a, p] = cidr.split("/");
  const addr = canonAddr(a ?? "");
  const len = p ?? (addr.includes(":") ? "128" : "32");
  return `${addr}/${len}`;
}

export function canonMac(mac: string): string {
  return mac.toLowerCase();
}

export const ZERO_MAC = "00:00:00:00:00:00";

/** Device names Kosmos owns (together with kind vxlan). */
export const KOSMOS_DEVICES = ["vx-bridge", "vx-local", "vx-bridge-6", "vx-local-6"] as const;

/** Route protocol / rule protocol number (see hoststate.ts). */
export { KOSMOS_NFT_TABLE, KOSMOS_ROUTE_PROTO, KOSMOS_ROUTE_TABLE } from "./hoststate.ts";

/**
 * Small deterministic string hash (FNV-1a 64-bit over UTF-16 code units, hex); pure. Computed on four
 * 16-bit limbs: the same digits as the BigInt definition, without allocating a BigInt per character
 * (it hashes the rendered nft script on every reconcile pass).
 */
export function fnv1a64(s: string): string {
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  for (let i = 0; i < s.length; i++) {
    h0 ^= s.charCodeAt(i);
    // h * 0x100000001b3 (2^40 + 0x1b3) mod 2^64: every limb times 0x1b3, plus h << 40.
    const t0 = h0 * 0x1b3;
    const t1 = h1 * 0x1b3 + (t0 >>> 16);
    const t2 = h2 * 0x1b3 + (h0 << 8) + (t1 >>> 16);
    const t3 = h3 * 0x1b3 + (h1 << 8) + (t2 >>> 16);
    h0 = t0 & 0xffff;
    h1 = t1 & 0xffff;
    h2 = t2 & 0xffff;
    h3 = t3 & 0xffff;
  }
  const hex = (n: number): string => n.toString(16).padStart(4, "0");
  return hex(h3) + hex(h2) + hex(h1) + hex(h0);
}
