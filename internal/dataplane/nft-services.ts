/**
 * The ClusterSetIP part of `table inet kosmos` (rendered with the rest by nft.ts, so one atomic
 * transaction replaces both). Per packet: one verdict-map lookup on (daddr, l4proto, dport) → the
 * service's chain; the service chain jumps to an endpoint chain by `numgen random` (kube-proxy's
 * nftables mode does the same), or first to the endpoint the client's address is pinned to
 * (ClientIP affinity: a dynamic set per endpoint, refreshed on each new connection, with the
 * Service's timeout). Only new connections traverse NAT chains; conntrack keeps the rest.
 *
 * The affinity sets' elements change with traffic: `canonicalNftListing` drops them, so the
 * tamper check does not see traffic as tampering.
 */
import type { ServiceVip } from "./hoststate.ts";
import { canonAddr } from "./normalize.ts";

/** Chains and priorities: before kube-proxy (dstnat = -100) so a ClusterSetIP is ours alone. */
const PRE_PRIORITY = "dstnat - 5";
const OUT_PRIORITY = "-105";

function sortVips(vips: ServiceVip[]): ServiceVip[] {
  return [...vips]
    .map((v) => ({
      ...v,
      vip: canonAddr(v.vip),
      endpoints: [...v.endpoints]
        .map((e) => ({ address: canonAddr(e.address), port: e.port }))
        .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port)),
    }))
    .sort((a, b) =>
      a.vip !== b.vip
        ? a.vip < b.vip
          ? -1
          : 1
        : a.protocol !== b.protocol
          ? a.protocol < b.protocol
            ? -1
            : 1
          : a.port - b.port,
    );
}

const addr = (family: 4 | 6, a: string): string => (family === 6 ? `[${a}]` : a);

/** The sets, maps and chains for the ClusterSetIPs (empty string when there are none). */
export function renderServiceVips(input: ServiceVip[] | undefined): string {
  const vips = sortVips(input ?? []).filter((v) => v.endpoints.length > 0);
  if (vips.length === 0) return "";
  let out = "";
  const elems: Record<4 | 6, string[]> = { 4: [], 6: [] };
  let chains = "";
  vips.forEach((v, i) => {
    const svc = `mcs_svc_${i}`;
    elems[v.family].push(`${v.vip} . ${v.protocol} . ${v.port} : goto ${svc}`);
    const fam = v.family === 4 ? "ip" : "ip6";
    const eps = v.endpoints.map((_, j) => `mcs_ep_${i}_${j}`);
    chains += `\tchain ${svc} {\n`;
    if (v.affinitySeconds) {
      eps.forEach((ep, j) => {
        out += `\tset mcs_aff_${i}_${j} {\n\t\ttype ${v.family === 4 ? "ipv4_addr" : "ipv6_addr"}\n\t\tflags dynamic,timeout\n\t\ttimeout ${v.affinitySeconds}s\n\t}\n`;
        chains += `\t\t${fam} saddr @mcs_aff_${i}_${j} goto ${ep}\n`;
      });
    }
    if (eps.length === 1) chains += `\t\tgoto ${eps[0]}\n`;
    else
      chains += `\t\tnumgen random mod ${eps.length} vmap { ${eps.map((ep, j) => `${j} : goto ${ep}`).join(", ")} }\n`;
    chains += "\t}\n";
    v.endpoints.forEach((e, j) => {
      chains += `\tchain ${eps[j]} {\n`;
      if (v.affinitySeconds) chains += `\t\tupdate @mcs_aff_${i}_${j} { ${fam} saddr }\n`;
      chains += `\t\tmeta l4proto ${v.protocol} dnat ${fam} to ${addr(v.family, e.address)}:${e.port}\n\t}\n`;
    });
  });
  for (const f of [4, 6] as const) {
    if (elems[f].length === 0) continue;
    out += `\tmap mcs_vips${f} {\n\t\ttype ${f === 4 ? "ipv4_addr" : "ipv6_addr"} . inet_proto . inet_service : verdict\n`;
    out += `\t\telements = { ${elems[f].join(", ")} }\n\t}\n`;
  }
  for (const [chain, hook, prio] of [
    ["mcs_pre", "prerouting", PRE_PRIORITY],
    ["mcs_out", "output", OUT_PRIORITY],
  ] as const) {
    out += `\tchain ${chain} {\n\t\ttype nat hook ${hook} priority ${prio}; policy accept;\n`;
    if (elems[4].length) out += "\t\tip daddr . meta l4proto . th dport vmap @mcs_vips4\n";
    if (elems[6].length) out += "\t\tip6 daddr . meta l4proto . th dport vmap @mcs_vips6\n";
    out += "\t}\n";
  }
  return out + chains;
}

/**
 * `nft list table` output without what traffic changes: the elements of the ClusterSetIP affinity
 * sets (`set mcs_aff_*`). The tamper check compares these.
 */
export function canonicalNftListing(listing: string): string {
  return listing.replace(/(\n\s*set mcs_aff_[^\n]*\{[^}]*?)\n\s*elements = \{[^}]*\}/g, "$1");
}
