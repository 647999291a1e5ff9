/** Small address arithmetic for carving lab subnets (bigint based; IPv4 and IPv6). */
import { IPv4, IPv6 } from "ip-num";

export type Fam = 4 | 6;

export function familyOf(cidrOrIp: string): Fam {
  return cidrOrIp.includes(":") ? 6 : 4;
}

function toBig(ip: string): bigint {
  return familyOf(ip) === 4 ? IPv4.fromString(ip).value : IPv6.fromString(ip).value;
}

function fromBig(v: bigint, fam: Fam): string {
  if (fam === 4) return IPv4.fromNumber(v).toString();
  return compress6(IPv6.fromBigInt(v).toString());
}

/** RFC 5952 compression of an expanded IPv6 address. */
export function compress6(expanded: string): string {
  const groups = expanded.split(":").map((g) => g.replace(/^0+(?=.)/, "").toLowerCase());
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === "0") j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return groups.join(":");
  const head = groups.slice(0, bestStart).join(":");
  const tail = groups.slice(bestStart + bestLen).join(":");
  return `${head}::${tail}`;
}

export function splitCidr(cidr: string): { ip: string; len: number; fam: Fam } {
  const [ip, lenStr] = cidr.split("/");
  if (!ip || lenStr === undefined) throw new Error(`not a CIDR: ${cidr}`);
  return { ip, len: Number(lenStr), fam: familyOf(ip) };
}

/** The `index`-th subnet of length `newLen` inside `cidr` (index 0 = the first). */
export function subnet(cidr: string, newLen: number, index: number): string {
  const { ip, len, fam } = splitCidr(cidr);
  const bits = fam === 4 ? 32 : 128;
  if (newLen < len || newLen > bits) throw new Error(`cannot carve /${newLen} from ${cidr}`);
  const count = 1n << BigInt(newLen - len);
  if (BigInt(index) >= count) throw new Error(`${cidr} has only ${count} /${newLen} subnets, wanted #${index}`);
  const base = (toBig(ip) >> BigInt(bits - len)) << BigInt(bits - len);
  const v = base + (BigInt(index) << BigInt(bits - newLen));
  return `${fromBig(v, fam)}/${newLen}`;
}

/** The address at offset `n` inside `cidr` (n = 1 is the first host). */
export function hostAt(cidr: string, n: number): string {
  const { ip, len, fam } = splitCidr(cidr);
  const bits = fam === 4 ? 32 : 128;
  const base = (toBig(ip) >> BigInt(bits - len)) << BigInt(bits - len);
  return fromBig(base + BigInt(n), fam);
}

export function prefixLen(cidr: string): number {
  return splitCidr(cidr).len;
}
