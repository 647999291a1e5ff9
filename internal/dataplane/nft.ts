import type { NftIntent, PrefixMap } from "./hoststate.ts";
import { KOSMOS_NFT_TABLE } from "./hoststate.ts";
import { renderServiceVips } from "./nft-services.ts";
import { canonCidr, fnv1a64 } from "./normalize.ts";

/**
 * Render the NftIntent to one `nft -f` script that atomically replaces `table inet kosmos`:
 *   table inet kosmos {}          (make sure it exists so the delete cannot fail)
 *   delete table inet kosmos
 *   table inet kosmos { ... }     (full re-creation)
 * All three run in one transaction, so there is never a moment without our rules.
 *
 * Lookups are O(1)/O(log n) per packet regardless of the number of entries:
 * - global-IP prefix NAT: `snat ip prefix to ip saddr map @gsnat4` (interval map local → global) and
 *   `dnat ip prefix to ip daddr map @gdnat4` (global → local). Verified on nft 1.0.6 / kernel 6.x.
 * - masquerade avoidance: `ip daddr @nomasq4 snat ip to ip saddr` in a nat chain at priority
 *   srcnat - 10 installs a SNAT binding to the packet's own address (a null binding); the kernel runs
 *   later NAT chains (iptables MASQUERADE of the CNI at srcnat) only while no binding exists.
 * - MSS clamping: `tcp flags syn tcp option maxseg size set rt mtu` on forward + output.
 *
 * The table comment carries a hash of the script body so a reader can tell which intent is live.
 */
export function renderNft(intent: NftIntent): { script: string; hash: string } {
  const body = renderBody(intent);
  const hash = fnv1a64(body);
  const table = `inet ${KOSMOS_NFT_TABLE}`;
  const script = `table ${table} {}\ndelete table ${table}\ntable ${table} {\n\tcomment "kosmos:${hash}"\n${body}}\n`;
  return { script, hash };
}

/** Script that removes the table if present (idempotent). */
export function renderNftDelete(): string {
  const table = `inet ${KOSMOS_NFT_TABLE}`;
  return `table ${table} {}\ndelete table ${table}\n`;
}

const q = (s: string): string => `"${s.replace(/["\\]/g, "")}"`;

function uniqSorted(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

function setBlock(name: string, type: string, elems: string[], interval: boolean): string {
  const lines = [`\tset ${name} {`, `\t\ttype ${type}`];
  if (interval) lines.push("\t\tflags interval");
  if (elems.length > 0) lines.push(`\t\telements = { ${elems.join(", ")} }`);
  lines.push("\t}");
  return lines.join("\n") + "\n";
}

function mapBlock(name: string, type: string, entries: Array<[string, string]>): string {
  const lines = [`\tmap ${name} {`, `\t\ttype ${type} : interval ${type}`, "\t\tflags interval"];
  if (entries.length > 0)
    lines.push(`\t\telements = { ${entries.map(([k, v]) => `${k} : ${v}`).join(", ")} }`);
  lines.push("\t}");
  return lines.join("\n") + "\n";
}

function mapEntries(maps: PrefixMap[], fam: 4 | 6, dir: "snat" | "dnat"): Array<[string, string]> {
  const seen = new Map<string, string>();
  for (const m of maps) {
    if (m.family !== fam) continue;
    const [k, v] =
      dir === "snat" ? [canonCidr(m.local), canonCidr(m.global)] : [canonCidr(m.global), canonCidr(m.local)];
    seen.set(k, v);
  }
  return [...seen.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function renderBody(intent: NftIntent): string {
  const overlay = uniqSorted(intent.overlayDevices);
  const bridge = overlay.filter((d) => d.startsWith("vx-bridge"));
  const bridgeIfs = bridge.length > 0 ? bridge : ["vx-bridge", "vx-bridge-6"];
  const mss = uniqSorted(intent.mssClampDevices);
  let out = "";
  out += setBlock("bridge_ifs", "ifname", bridgeIfs.map(q), false);
  out += setBlock("mss_ifs", "ifname", mss.map(q), false);
  out += setBlock("nomasq4", "ipv4_addr", uniqSorted(intent.noMasqueradeDst.v4.map(canonCidr)), true);
  out += setBlock("nomasq6", "ipv6_addr", uniqSorted(intent.noMasqueradeDst.v6.map(canonCidr)), true);
  const s4 = mapEntries(intent.globalMaps, 4, "snat");
  const d4 = mapEntries(intent.globalMaps, 4, "dnat");
  const s6 = mapEntries(intent.globalMaps, 6, "snat");
  const d6 = mapEntries(intent.globalMaps, 6, "dnat");
  out += mapBlock("gsnat4", "ipv4_addr", s4);
  out += mapBlock("gdnat4", "ipv4_addr", d4);
  out += mapBlock("gsnat6", "ipv6_addr", s6);
  out += mapBlock("gdnat6", "ipv6_addr", d6);

  // Masquerade: one set per (family, oif) group of source CIDRs.
  const masq = [...intent.masquerade]
    .map((m, i) => ({ ...m, srcCIDRs: uniqSorted(m.srcCIDRs.map(canonCidr)), i }))
    .sort((a, b) => (a.oif + a.family < b.oif + b.family ? -1 : 1));
  masq.forEach((m, i) => {
    out += setBlock(`masq_src_${i}`, m.family === 4 ? "ipv4_addr" : "ipv6_addr", m.srcCIDRs, true);
  });

  out += "\tchain nat_pre {\n\t\ttype nat hook prerouting priority dstnat - 10; policy accept;\n";
  if (d4.length > 0) out += "\t\tiifname @bridge_ifs dnat ip prefix to ip daddr map @gdnat4\n";
  if (d6.length > 0) out += "\t\tiifname @bridge_ifs dnat ip6 prefix to ip6 daddr map @gdnat6\n";
  out += "\t}\n";

  out += "\tchain nat_post {\n\t\ttype nat hook postrouting priority srcnat - 10; policy accept;\n";
  if (s4.length > 0) out += "\t\toifname @bridge_ifs snat ip prefix to ip saddr map @gsnat4\n";
  if (s6.length > 0) out += "\t\toifname @bridge_ifs snat ip6 prefix to ip6 saddr map @gsnat6\n";
  masq.forEach((m, i) => {
    const fam = m.family === 4 ? "ip" : "ip6";
    if (m.srcCIDRs.length === 0) return;
    // oif "*" = any device, minus `exceptOif` (e.g. "replies leaving the overlay toward the LAN").
    const except = uniqSorted(m.exceptOif ?? []);
    const oifMatch =
      m.oif !== "*"
        ? `oifname ${q(m.oif)} `
        : except.length > 0
          ? `oifname != { ${except.map(q).join(", ")} } `
          : "";
    out += `\t\t${oifMatch}${fam} saddr @masq_src_${i} masquerade\n`;
  });
  if (intent.noMasqueradeDst.v4.length > 0) out += "\t\tip daddr @nomasq4 snat ip to ip saddr\n";
  if (intent.noMasqueradeDst.v6.length > 0) out += "\t\tip6 daddr @nomasq6 snat ip6 to ip6 saddr\n";
  out += "\t}\n";

  for (const [chain, hook] of [
    ["mss_forward", "forward"],
    ["mss_output", "output"],
  ] as const) {
    out += `\tchain ${chain} {\n\t\ttype filter hook ${hook} priority mangle; policy accept;\n`;
    if (mss.length > 0) {
      out += "\t\toifname @mss_ifs tcp flags syn tcp option maxseg size set rt mtu\n";
    }
    out += "\t}\n";
  }
  return out + renderServiceVips(intent.serviceVips);
}
