/**
 * ClusterSetIP allocation (pure). Each ClusterSetIP-type import gets one VIP from the clusterset
 * range. An address already written in some cluster's ServiceImport (spec.ips) is kept, so the VIP
 * is stable across controller restarts; a new one starts at a hash of `ns/name` and probes upward,
 * so two allocators that see the same state pick the same address. One allocation pass sees every
 * import at once: no two keys ever get the same address.
 */
import { createHash } from "node:crypto";
import { KosmosError } from "../errors/index.ts";
import { type Cidr, formatIp, parseCidr, tryParseIp } from "../topology/index.ts";

export class AllocationError extends KosmosError<"KOSMOS_CLUSTERSET_IP"> {
  constructor(message: string) {
    super("KOSMOS_CLUSTERSET_IP", message, "widen --clusterset-cidr");
  }
}

/** Parse the clusterset range; usable addresses exclude a v4 network and broadcast address. */
export function parseRange(cidr: string): Cidr {
  const c = parseCidr(cidr);
  const bits = c.family === 4 ? 32 : 128;
  if (bits - c.len < 2)
    throw new AllocationError(`clusterset range ${cidr} is too small (need at least a /${bits - 2})`);
  return c;
}

function usable(c: Cidr): { first: bigint; size: bigint } {
  return c.family === 4
    ? { first: c.base + 1n, size: c.last - c.base - 1n }
    : { first: c.base + 1n, size: c.last - c.base };
}

function inRange(c: Cidr, ip: string): bigint | undefined {
  const a = tryParseIp(ip);
  if (!a || a.family !== c.family) return undefined;
  const { first, size } = usable(c);
  return a.value >= first && a.value < first + size ? a.value : undefined;
}

/**
 * `keys`: the imports needing a VIP. `seen`: every VIP found per key (in any cluster; the same key
 * may carry different ones after a partial write — the most common wins, ties the lowest).
 */
export function allocateClusterSetIPs(
  keys: string[],
  seen: Map<string, string[]>,
  range: Cidr,
): Map<string, string> {
  const out = new Map<string, string>();
  const taken = new Set<bigint>();
  const sorted = [...new Set(keys)].sort();
  for (const k of sorted) {
    const counts = new Map<bigint, number>();
    for (const ip of seen.get(k) ?? []) {
      const v = inRange(range, ip);
      if (v !== undefined) counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    const best = [...counts]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .find(([v]) => !taken.has(v));
    if (best) {
      taken.add(best[0]);
      out.set(k, formatIp(range.family, best[0]));
    }
  }
  const { first, size } = usable(range);
  for (const k of sorted) {
    if (out.has(k)) continue;
    if (BigInt(taken.size) >= size)
      throw new AllocationError(`clusterset range ${range.text} is full (${taken.size} VIPs)`);
    const h = BigInt(`0x${createHash("sha256").update(k).digest("hex").slice(0, 16)}`);
    let off = h % size;
    while (taken.has(first + off)) off = (off + 1n) % size;
    taken.add(first + off);
    out.set(k, formatIp(range.family, first + off));
  }
  return out;
}
