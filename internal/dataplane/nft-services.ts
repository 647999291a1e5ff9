/**
 * The ClusterSetIP part of `table inet kosmos` (rendered with the rest by nft.ts, so one atomic
 * transaction replaces both). Per packet: one verdict-map lookup on (daddr, l4proto, dport) → the
 * service's chain; the service chain jumps to an endpoint chain by `numgen random` (kube-proxy's
 * nftables mode does the same), or first to the endpoint the client's address is pinned to
 * (ClientIP affinity: a dynamic set per endpoint, refreshed on each new connection, with the
 * Service's timeout). Only new connections traverse NAT chains; conntrack keeps the rest.
 *
 * A (VIP, protocol, port) without endpoints is refused at once, as kube-proxy refuses a Service
 * without endpoints: a set of them, matched in filter chains on prerouting and output, whose
 * `reject` answers ICMP port unreachable (a TCP connect gets ECONNREFUSED, a connected UDP socket
 * too), instead of a silent drop the client only notices at its timeout. Prerouting, not forward:
 * a packet to an unrouted VIP never reaches forward (seen on kernel 6.18). The chains run after
 * dstnat, so a connection DNATed before its port lost the last endpoint is not matched here.
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

/** Filter chains after dstnat (-100): a packet NAT already sent to a backend no longer has the VIP. */
const REJECT_PRIORITY = "filter - 20";

/** The set of (VIP, protocol, port) without endpoints and the chains that reject them. */
function renderNoEndpoints(vips: ServiceVip[]): string {
  const elems: Record<4 | 6, string[]> = { 4: [], 6: [] };
  for (const v of vips) elems[v.family].push(`${v.vip} . ${v.protocol} . ${v.port}`);
  let out = "";
  for (const f of [4, 6] as const) {
    if (elems[f].length === 0) continue;
    out += `\tset mcs_noep${f} {\n\t\ttype ${f === 4 ? "ipv4_addr" : "ipv6_addr"} . inet_proto . inet_service\n`;
    out += `\t\telements = { ${elems[f].join(", ")} }\n\t}\n`;
  }
  if (out === "") return "";
  for (const hook of ["prerouting", "output"] as const) {
    out += `\tchain mcs_noep_${hook} {\n\t\ttype filter hook ${hook} priority ${REJECT_PRIORITY}; policy accept;\n`;
    if (elems[4].length) out += "\t\tip daddr . meta l4proto . th dport @mcs_noep4 reject\n";
    if (elems[6].length) out += "\t\tip6 daddr . meta l4proto . th dport @mcs_noep6 reject\n";
    out += "\t}\n";
  }
  return out;
}

/** The sets, maps and chains for the ClusterSetIPs (empty string when there are none). */
export function renderServiceVips(input: ServiceVip[] | undefined): string {
  const all = sortVips(input ?? []);
  return (
    renderNoEndpoints(all.filter((v) => v.endpoints.length === 0)) +
    renderDnat(all.filter((v) => v.endpoints.length > 0))
  );
}

/** The DNAT part: the verdict maps, the hooked NAT chains, a chain per service and per endpoint. */
function renderDnat(vips: ServiceVip[]): string {
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
