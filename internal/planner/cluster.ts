/**
 * Per-cluster data the planner parses once per plan (global CIDR maps, overlay mappers), and the
 * address helpers the steps share: underlay addresses, global mapping of CIDRs, route destinations.
 */
import {
  type AddressFamily,
  type Cidr,
  type Cluster,
  familiesOf,
  formatIPv4Number,
  formatIPv6BigInt,
  type Node,
  type OverlayMapper,
  overlayMapper,
  parseIPv4Number,
  parseIPv6BigInt,
  tryParseCidr,
} from "../topology/index.ts";
import { PlanError } from "./errors.ts";

export interface GlobalMap {
  key: Cidr;
  value: Cidr;
}

/** Per-cluster data parsed once per plan. */
export interface ClusterCtx {
  cluster: Cluster;
  fams: AddressFamily[];
  nodes: Node[];
  globals: GlobalMap[];
  /** IPv4 global maps as plain numbers (hot path). */
  g4: Array<{ kLo: number; kHi: number; vLo: number; len: number }>;
  bridge: Partial<Record<AddressFamily, OverlayMapper>>;
  local: Partial<Record<AddressFamily, OverlayMapper>>;
}

export function mustCidr(s: string, where: string): Cidr {
  const c = tryParseCidr(s);
  if (!c) {
    throw new PlanError(
      "PLAN_INVALID_CIDR",
      `${where}: invalid CIDR ${JSON.stringify(s)}`,
      "run validateTopology first",
    );
  }
  return c;
}

/** Parse cluster `c` (whose nodes are `nodes`) for planning. */
export function clusterCtxOf(c: Cluster, nodes: Node[]): ClusterCtx {
  const fams = familiesOf(c.ipFamily);
  const globals: GlobalMap[] = Object.entries(c.globalCIDRs).map(([k, v]) => ({
    key: mustCidr(k, `clusters[${c.name}].globalCIDRs key`),
    value: mustCidr(v, `clusters[${c.name}].globalCIDRs[${k}]`),
  }));
  const bridge: Partial<Record<AddressFamily, OverlayMapper>> = {};
  const local: Partial<Record<AddressFamily, OverlayMapper>> = {};
  for (const f of fams) {
    bridge[f] = overlayMapper(f === 4 ? c.bridgeCIDRs.ip : c.bridgeCIDRs.ip6);
    local[f] = overlayMapper(f === 4 ? c.localCIDRs.ip : c.localCIDRs.ip6);
  }
  const g4 = globals
    .filter((g) => g.key.family === 4)
    .map((g) => ({
      kLo: Number(g.key.base),
      kHi: Number(g.key.last),
      vLo: Number(g.value.base),
      len: g.key.len,
    }));
  return { cluster: c, fams, nodes, globals, g4, bridge, local };
}

export function underlayOf(n: Node, f: AddressFamily): string | undefined {
  return f === 4 ? n.ipv4 : n.ipv6;
}

/** Canonical underlay address text (IPv4 strings parse strictly, so valid ones are canonical). */
export function canonicalUnderlay(s: string, f: AddressFamily): string | undefined {
  if (f === 4) return parseIPv4Number(s) === undefined ? undefined : s;
  const v = parseIPv6BigInt(s);
  return v === undefined ? undefined : formatIPv6BigInt(v);
}

/** Replace `c` by its global CIDR when one of the cluster's maps covers it. */
export function toGlobal(c: Cidr, globals: GlobalMap[]): Cidr {
  for (const g of globals) {
    const k = g.key;
    if (k.family === c.family && c.len >= k.len && c.base >= k.base && c.last <= k.last) {
      const base = g.value.base + (c.base - k.base);
      if (c.base === k.base && c.len === k.len) return g.value;
      const text = mustCidr(`${formatBase(c.family, base)}/${c.len}`, "global map").text;
      return { family: c.family, base, len: c.len, last: base + (c.last - c.base), text };
    }
  }
  return c;
}

function formatBase(f: AddressFamily, v: bigint): string {
  if (f === 6) return formatIPv6BigInt(v);
  const n = Number(v);
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** A route destination: IPv4 as plain numbers (hot path), IPv6 as a parsed Cidr. */
export interface Dst {
  family: AddressFamily;
  text: string;
  len: number;
  /** IPv4 first/last address. */
  lo: number;
  hi: number;
  c?: Cidr;
}

/** Parse a (validated) CIDR of cluster `ctx` and replace it by its global CIDR where mapped. */
export function dstOf(s: string, ctx: ClusterCtx, where: string): Dst {
  if (!s.includes(":")) {
    const slash = s.indexOf("/");
    const v = slash > 0 ? parseIPv4Number(s.slice(0, slash)) : undefined;
    const len = slash > 0 ? Number(s.slice(slash + 1)) : Number.NaN;
    if (v === undefined || !Number.isInteger(len) || len < 0 || len > 32)
      return fromCidr(mustCidr(s, where), ctx);
    const size = 2 ** (32 - len);
    let lo = v - (v % size);
    for (const g of ctx.g4) {
      if (len >= g.len && lo >= g.kLo && lo + size - 1 <= g.kHi) {
        lo = g.vLo + (lo - g.kLo);
        break;
      }
    }
    return { family: 4, text: `${formatIPv4Number(lo)}/${len}`, len, lo, hi: lo + size - 1 };
  }
  return fromCidr(mustCidr(s, where), ctx);
}

function fromCidr(c0: Cidr, ctx: ClusterCtx): Dst {
  const c = toGlobal(c0, ctx.globals);
  return c.family === 4
    ? { family: 4, text: c.text, len: c.len, lo: Number(c.base), hi: Number(c.last) }
    : { family: 6, text: c.text, len: c.len, lo: 0, hi: 0, c };
}
