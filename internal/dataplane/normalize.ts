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

/** Route protocol / rule protocol number (see planner/hoststate.ts). */
export { KOSMOS_NFT_TABLE, KOSMOS_ROUTE_PROTO, KOSMOS_ROUTE_TABLE } from "../planner/hoststate.ts";

/** Small deterministic string hash (FNV-1a 64-bit, hex); pure. */
export function fnv1a64(s: string): string {
  let h = 0xcbf29ce484222325n;
  const prime = 0x100000001b3n;
  const mask = (1n << 64n) - 1n;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * prime) & mask;
  }
  return h.toString(16).padStart(16, "0");
}
