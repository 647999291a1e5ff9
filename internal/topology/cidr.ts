/**
 * CIDR and IP math for IPv4 and IPv6, on bigints (both families) with a number fast path for IPv4.
 *
 * Why not ip-num at runtime: it parses addresses an order of magnitude slower, and the planner must
 * plan a 100k-node topology in under a second (figures: docs/benchmarks.md, "Planner design
 * figures"). ip-num stays the reference: test/unit/topology-cidr.test.ts checks this parser against
 * it. Parsing is strict: no whitespace, no leading zeros in IPv4 octets or prefix lengths, no zone
 * ids. CIDRs with host bits set are accepted and canonicalized (host bits cleared).
 */
import { KosmosError } from "../errors/index.ts";

export type AddressFamily = 4 | 6;

export class CidrError extends KosmosError<"CIDR_INVALID"> {
  override name = "CidrError";
  constructor(message: string, hint: string) {
    super("CIDR_INVALID", message, hint);
  }
}

export interface IpAddress {
  family: AddressFamily;
  value: bigint;
}

/** A parsed, canonical CIDR: `base` has no host bits. */
export interface Cidr {
  family: AddressFamily;
  base: bigint;
  len: number;
  /** Last address in the range (inclusive). */
  last: bigint;
  /** Canonical text ("10.244.0.0/16", "fd10:1::/48"). */
  text: string;
}

const V6_MAX = (1n << 128n) - 1n;

function bitsOf(family: AddressFamily): number {
  return family === 4 ? 32 : 128;
}

/** Parse a dotted-quad IPv4 address to an unsigned 32-bit number, or undefined. */
export function parseIPv4Number(s: string): number | undefined {
  const n = s.length;
  if (n < 7 || n > 15) return undefined;
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
      if (dots > 3) return undefined;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined; // leading zero
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + octet;
}

export function formatIPv4Number(v: number): string {
  return `${(v >>> 24) & 255}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

function parseHexGroup(g: string): number | undefined {
  if (g.length === 0 || g.length > 4) return undefined;
  let v = 0;
  for (let i = 0; i < g.length; i++) {
    const c = g.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 102) d = c - 87;
    else if (c >= 65 && c <= 70) d = c - 55;
    else return undefined;
    v = v * 16 + d;
  }
  return v;
}

/** Parse the groups of one side of "::" (may end with an embedded IPv4 when `tail`). */
function parseGroups(part: string, tail: boolean): number[] | undefined {
  if (part === "") return [];
  const raw = part.split(":");
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const g = raw[i] as string;
    if (tail && i === raw.length - 1 && g.includes(".")) {
      const v4 = parseIPv4Number(g);
      if (v4 === undefined) return undefined;
      out.push((v4 >>> 16) & 0xffff, v4 & 0xffff);
      continue;
    }
    const v = parseHexGroup(g);
    if (v === undefined) return undefined;
    out.push(v);
  }
  return out;
}

/** Parse an IPv6 address to a 128-bit bigint, or undefined. */
export function parseIPv6BigInt(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const dc = s.indexOf("::");
  let groups: number[];
  if (dc === -1) {
    const g = parseGroups(s, true);
    if (g?.length !== 8) return undefined;
    groups = g;
  } else {
    if (s.indexOf("::", dc + 1) !== -1) return undefined;
    const head = parseGroups(s.slice(0, dc), false);
    const tail = parseGroups(s.slice(dc + 2), true);
    if (!head || !tail) return undefined;
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    groups = [...head, ...new Array<number>(fill).fill(0), ...tail];
  }
  // Two 64-bit halves keep bigint work small.
  let hi = 0n;
  let lo = 0n;
  for (let i = 0; i < 4; i++) hi = (hi << 16n) | BigInt(groups[i] as number);
  for (let i = 4; i < 8; i++) lo = (lo << 16n) | BigInt(groups[i] as number);
  return (hi << 64n) | lo;
}

/** RFC 5952 text form (lowercase, longest zero run compressed), as `ip` prints it. */
export function formatIPv6BigInt(v: bigint): string {
  const groups: number[] = new Array(8);
  let x = v;
  for (let i = 7; i >= 0; i--) {
    groups[i] = Number(x & 0xffffn);
    x >>= 16n;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number) =>
    groups
      .slice(a, b)
      .map((g) => g.toString(16))
      .join(":");
  if (bestStart === -1) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

export function tryParseIp(s: string): IpAddress | undefined {
  if (typeof s !== "string") return undefined;
  if (s.includes(":")) {
    const v = parseIPv6BigInt(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseIPv4Number(s);
  return v === undefined ? undefined : { family: 4, value: BigInt(v) };
}

export function parseIp(s: string): IpAddress {
  const ip = tryParseIp(s);
  if (!ip) {
    throw new CidrError(
      `invalid IP address ${JSON.stringify(s)}`,
      "write an IPv4 dotted quad (192.168.1.7) or an IPv6 address (fd00::7), without prefix or spaces",
    );
  }
  return ip;
}

export function formatIp(family: AddressFamily, value: bigint): string {
  return family === 4 ? formatIPv4Number(Number(value)) : formatIPv6BigInt(value);
}

/** Canonical text of an IP address. */
export function canonicalIp(s: string): string {
  const ip = parseIp(s);
  return formatIp(ip.family, ip.value);
}

export function hostMask(family: AddressFamily, len: number): bigint {
  return (1n << BigInt(bitsOf(family) - len)) - 1n;
}

function makeCidr4(value: number, len: number): Cidr {
  const host = len === 0 ? 0xffffffff : (2 ** (32 - len) - 1) >>> 0;
  const base = (value & ~host) >>> 0;
  return {
    family: 4,
    base: BigInt(base),
    len,
    last: BigInt((base | host) >>> 0),
    text: `${formatIPv4Number(base)}/${len}`,
  };
}

export function makeCidr(family: AddressFamily, value: bigint, len: number): Cidr {
  if (family === 4) return makeCidr4(Number(value), len);
  const host = hostMask(family, len);
  const base = value & ~host & V6_MAX;
  return { family, base, len, last: base | host, text: `${formatIp(family, base)}/${len}` };
}

function parsePrefixLen(s: string, max: number): number | undefined {
  if (s.length === 0 || s.length > 3) return undefined;
  if (s.length > 1 && s.charCodeAt(0) === 48) return undefined;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
    v = v * 10 + (c - 48);
  }
  return v <= max ? v : undefined;
}

export function tryParseCidr(s: string): Cidr | undefined {
  if (typeof s !== "string") return undefined;
  const slash = s.indexOf("/");
  if (slash <= 0) return undefined;
  if (!s.includes(":")) {
    const v4 = parseIPv4Number(s.slice(0, slash));
    const len4 = parsePrefixLen(s.slice(slash + 1), 32);
    return v4 === undefined || len4 === undefined ? undefined : makeCidr4(v4, len4);
  }
  const ip = tryParseIp(s.slice(0, slash));
  if (!ip) return undefined;
  const len = parsePrefixLen(s.slice(slash + 1), bitsOf(ip.family));
  if (len === undefined) return undefined;
  return makeCidr(ip.family, ip.value, len);
}

/** Parse and canonicalize a CIDR ("10.244.3.7/16" -> 10.244.0.0/16). Throws CidrError on garbage. */
export function parseCidr(s: string): Cidr {
  const c = tryParseCidr(s);
  if (!c) {
    throw new CidrError(
      `invalid CIDR ${JSON.stringify(s)}`,
      "write address/prefix, e.g. 10.244.0.0/16 (prefix 0-32) or fd10:1::/48 (prefix 0-128)",
    );
  }
  return c;
}

export function canonicalCidr(s: string): string {
  return parseCidr(s).text;
}

/** Family of an IP or CIDR string (4 or 6). Throws CidrError when it is neither. */
export function familyOf(s: string): AddressFamily {
  const c = s.includes("/") ? tryParseCidr(s) : tryParseIp(s);
  if (!c) throw new CidrError(`not an IP address or CIDR: ${JSON.stringify(s)}`, "check the address syntax");
  return c.family;
}

function asCidr(x: Cidr | IpAddress | string): Cidr {
  if (typeof x === "string") {
    if (x.includes("/")) return parseCidr(x);
    const ip = parseIp(x);
    return makeCidr(ip.family, ip.value, bitsOf(ip.family));
  }
  if ("len" in x) return x;
  return makeCidr(x.family, x.value, bitsOf(x.family));
}

/** Whether `outer` contains all of `inner` (a CIDR or an IP). Different families never contain. */
export function cidrContains(outer: Cidr | string, inner: Cidr | IpAddress | string): boolean {
  const o = asCidr(outer);
  const i = asCidr(inner);
  return o.family === i.family && o.len <= i.len && i.base >= o.base && i.last <= o.last;
}

export function cidrOverlaps(a: Cidr | string, b: Cidr | string): boolean {
  const x = asCidr(a);
  const y = asCidr(b);
  return x.family === y.family && x.base <= y.last && y.base <= x.last;
}

/**
 * Map `sub` (inside `local`) to the same offset inside `global` (same prefix length as `local`):
 * local 10.244.0.0/16 -> global 242.1.0.0/16 maps 10.244.3.0/24 to 242.1.3.0/24.
 * Returns undefined when `sub` is not inside `local` or the families/lengths do not match.
 */
export function mapCidrToGlobal(sub: Cidr, local: Cidr, global: Cidr): Cidr | undefined {
  if (local.family !== global.family || local.len !== global.len) return undefined;
  if (sub.family !== local.family || sub.len < local.len || sub.base < local.base || sub.last > local.last) {
    return undefined;
  }
  return makeCidr(sub.family, global.base + (sub.base - local.base), sub.len);
}

/** Same as mapCidrToGlobal, on strings; throws CidrError when the mapping does not apply. */
export function mapToGlobal(sub: string, local: string, global: string): string {
  const m = mapCidrToGlobal(parseCidr(sub), parseCidr(local), parseCidr(global));
  if (!m) {
    throw new CidrError(
      `${sub} is not inside ${local}, or ${local} and ${global} differ in family or prefix length`,
      "a global CIDR must have the same prefix length as the local CIDR it maps",
    );
  }
  return m.text;
}

/**
 * The overlay address keeps the host bits of the underlay IP inside the overlay prefix:
 * underlay 192.168.1.7, overlay 220.0.0.0/8 -> 220.168.1.7 (value only, no prefix).
 */
export function overlayValue(underlay: bigint, overlay: Cidr): bigint {
  return overlay.base | (underlay & hostMask(overlay.family, overlay.len));
}

/** Overlay address with prefix, e.g. "220.168.1.7/8" or "9480:1ab:2::3/16". */
export function overlayAddress(underlayIp: string, overlayCidr: string): string {
  const ip = parseIp(underlayIp);
  const o = parseCidr(overlayCidr);
  if (ip.family !== o.family) {
    throw new CidrError(
      `underlay ${underlayIp} and overlay ${overlayCidr} differ in family`,
      "IPv4 nodes use the IPv4 bridge/local CIDR, IPv6 nodes the IPv6 one",
    );
  }
  return `${formatIp(o.family, overlayValue(ip.value, o))}/${o.len}`;
}

/**
 * A precomputed overlay prefix for hot loops: maps an underlay address string to the overlay
 * address string (no prefix). IPv4 uses plain 32-bit numbers.
 */
export interface OverlayMapper {
  family: AddressFamily;
  len: number;
  /** Undefined when the underlay string is not an address of this family. */
  ip(underlay: string): string | undefined;
  /** IPv4 mappers only: overlay address of an already parsed underlay address (hot loops). */
  ip4?(underlay: number): string;
}

export function overlayMapper(overlayCidr: string): OverlayMapper {
  const o = parseCidr(overlayCidr);
  if (o.family === 4) {
    const host = o.len === 0 ? 0xffffffff : (2 ** (32 - o.len) - 1) >>> 0;
    const base = Number(o.base) >>> 0;
    return {
      family: 4,
      len: o.len,
      ip(underlay: string) {
        const v = parseIPv4Number(underlay);
        if (v === undefined) return undefined;
        return formatIPv4Number((base | (v & host)) >>> 0);
      },
      ip4(v: number) {
        return formatIPv4Number((base | (v & host)) >>> 0);
      },
    };
  }
  return {
    family: 6,
    len: o.len,
    ip(underlay: string) {
      if (!underlay.includes(":")) return undefined;
      const v = parseIPv6BigInt(underlay);
      if (v === undefined) return undefined;
      return formatIPv6BigInt(overlayValue(v, o));
    },
  };
}
