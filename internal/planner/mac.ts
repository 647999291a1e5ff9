import { createHash } from "node:crypto";

const cache = new Map<string, string>();

interface BunSha256 {
  SHA256: { hash(input: string): Uint8Array };
}
const bunSha = (globalThis as { Bun?: BunSha256 }).Bun?.SHA256;

/**
 * SHA-256 digest: Bun's one-shot hash when running on Bun (an order of magnitude cheaper per call;
 * a plan hashes one MAC per peer: docs/benchmarks.md, "Planner design figures"), else node:crypto.
 */
function sha256(s: string): Uint8Array {
  return bunSha ? bunSha.hash(s) : createHash("sha256").update(s).digest();
}
const CACHE_MAX = 500_000;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Stable VTEP MAC of `node` on `device`: locally administered unicast (first byte `& 0xfe | 0x02`)
 * from SHA-256 of `${node}/${device}`. Deterministic, so every peer derives the same MAC without
 * gossiping it. Memoized (a pure function; the cache only saves work on re-plans).
 */
export function vtepMac(node: string, device: string): string {
  const key = `${node}/${device}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const d = sha256(key);
  const b0 = ((d[0] as number) & 0xfe) | 0x02;
  const mac = `${HEX[b0]}:${HEX[d[1] as number]}:${HEX[d[2] as number]}:${HEX[d[3] as number]}:${HEX[d[4] as number]}:${HEX[d[5] as number]}`;
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(key, mac);
  return mac;
}
