import { createHash } from "node:crypto";

const cache = new Map<string, string>();
const CACHE_MAX = 500_000;

/**
 * Stable VTEP MAC of `node` on `device`: locally administered unicast (first byte `& 0xfe | 0x02`)
 * from SHA-256 of `${node}/${device}`. Deterministic, so every peer derives the same MAC without
 * gossiping it. Memoized (a pure function; the cache only saves work on re-plans).
 */
export function vtepMac(node: string, device: string): string {
  const key = `${node}/${device}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const d = createHash("sha256").update(key).digest();
  const b0 = ((d[0] as number) & 0xfe) | 0x02;
  const hex = (x: number) => (x < 16 ? "0" : "") + x.toString(16);
  const mac = `${hex(b0)}:${hex(d[1] as number)}:${hex(d[2] as number)}:${hex(d[3] as number)}:${hex(d[4] as number)}:${hex(d[5] as number)}`;
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, mac);
  return mac;
}
