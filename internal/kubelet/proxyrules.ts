/**
 * The lab's kube-proxy stand-in, pure: a cluster's Services and EndpointSlices → one nftables table
 * (`inet kosmoslab-proxy`, its own: it never touches Kosmos' `inet kosmos` nor the network-only lab's
 * `inet labproxy`) that DNATs each ClusterIP:port to a random ready endpoint (TCP, UDP and SCTP ports
 * as declared). Traffic to a ClusterIP from outside the cluster's pod CIDRs is masqueraded, as
 * kube-proxy does with --cluster-cidr, and so is hairpin traffic (a pod reaching itself through its
 * Service), so replies come back through the node that translated them.
 */

export const PROXY_TABLE = "kosmoslab-proxy";

export interface ServiceLike {
  metadata: { name: string; namespace?: string };
  spec?: {
    clusterIP?: string;
    clusterIPs?: string[];
    type?: string;
    ports?: { name?: string; port: number; protocol?: string }[];
  };
}

export interface EndpointSliceLike {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  addressType: "IPv4" | "IPv6" | "FQDN";
  endpoints?: {
    addresses: string[];
    conditions?: { ready?: boolean | null; terminating?: boolean | null };
  }[];
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[];
}

const SERVICE_LABEL = "kubernetes.io/service-name";
const fam = (ip: string): "ip" | "ip6" => (ip.includes(":") ? "ip6" : "ip");

/** `[ip, port]` backends of one Service port for one family. */
export function backends(
  svc: ServiceLike,
  port: { name?: string; protocol?: string },
  slices: EndpointSliceLike[],
  family: "ip" | "ip6",
): string[] {
  const out: string[] = [];
  const ns = svc.metadata.namespace;
  for (const s of slices) {
    if (s.metadata.namespace !== ns || s.metadata.labels?.[SERVICE_LABEL] !== svc.metadata.name) continue;
    if ((s.addressType === "IPv6" ? "ip6" : "ip") !== family || s.addressType === "FQDN") continue;
    const sp = (s.ports ?? []).find(
      (p) => (p.name ?? "") === (port.name ?? "") && (p.protocol ?? "TCP") === (port.protocol ?? "TCP"),
    );
    if (!sp?.port) continue;
    for (const e of s.endpoints ?? []) {
      if (e.conditions?.ready === false) continue;
      for (const a of e.addresses) out.push(family === "ip6" ? `[${a}] . ${sp.port}` : `${a} . ${sp.port}`);
    }
  }
  return [...new Set(out)].sort();
}

export function renderProxy(
  services: ServiceLike[],
  slices: EndpointSliceLike[],
  clusterCIDRs: string[],
): string {
  const rules: string[] = [];
  const sorted = [...services].sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
  );
  for (const svc of sorted) {
    const ips = (svc.spec?.clusterIPs ?? (svc.spec?.clusterIP ? [svc.spec.clusterIP] : [])).filter(
      (ip) => ip && ip !== "None",
    );
    if (svc.spec?.type === "ExternalName") continue;
    for (const ip of ips) {
      const f = fam(ip);
      for (const p of svc.spec?.ports ?? []) {
        const proto = (p.protocol ?? "TCP").toLowerCase();
        const bs = backends(svc, p, slices, f);
        const match = `${f} daddr ${ip} ${proto} dport ${p.port}`;
        if (bs.length === 0) {
          rules.push(`    ${match} reject`);
          continue;
        }
        const map = bs.map((b, i) => `${i} : ${b}`).join(", ");
        rules.push(`    ${match} dnat ${f} to numgen random mod ${bs.length} map { ${map} }`);
      }
    }
  }
  const v4 = clusterCIDRs.filter((c) => !c.includes(":"));
  const v6 = clusterCIDRs.filter((c) => c.includes(":"));
  const mark = [
    ...(v4.length ? [`    ip saddr != { ${v4.join(", ")} } meta mark set meta mark | 0x4000`] : []),
    ...(v6.length ? [`    ip6 saddr != { ${v6.join(", ")} } meta mark set meta mark | 0x4000`] : []),
  ];
  return [
    `table inet ${PROXY_TABLE} {}`,
    `delete table inet ${PROXY_TABLE}`,
    `table inet ${PROXY_TABLE} {`,
    "  chain services {",
    ...rules,
    "  }",
    "  chain svc {",
    "    fib daddr type local return",
    ...mark,
    "    jump services",
    "  }",
    "  chain pre { type nat hook prerouting priority dstnat; policy accept; jump svc; }",
    "  chain out { type nat hook output priority -100; policy accept; jump services; }",
    '  chain post { type nat hook postrouting priority srcnat; policy accept; ct status dnat meta mark & 0x4000 == 0x4000 masquerade; ct status dnat oifname "cni0" iifname "cni0" masquerade; }',
    "}",
    "",
  ].join("\n");
}
