/**
 * A pod's /etc/resolv.conf as the kubelet writes it (pure), from `dnsPolicy` and `dnsConfig`:
 * - `ClusterFirst` (the default): the cluster DNS (`--cluster-dns`), search `<ns>.svc.<domain>
 *   svc.<domain> <domain>` then the node's own searches, `options ndots:5`. A hostNetwork pod with
 *   ClusterFirst gets the node's file (the kubelet's fallback), as does any pod when the kubelet has
 *   no cluster DNS configured.
 * - `ClusterFirstWithHostNet`: ClusterFirst, also for hostNetwork pods.
 * - `Default`: the node's file.
 * - `None`: only what `dnsConfig` says.
 * `dnsConfig` then adds nameservers and searches (deduplicated, searches capped at 32 as the kubelet
 * does) and options (a later value of the same option wins).
 * `undefined` means: leave the node's /etc/resolv.conf in place.
 */

export interface DnsConfigLike {
  nameservers?: string[];
  searches?: string[];
  options?: { name: string; value?: string }[];
}

export interface ResolvInput {
  dnsPolicy?: string;
  dnsConfig?: DnsConfigLike;
  hostNetwork: boolean;
  namespace: string;
  /** The kubelet's --cluster-dns (empty: none). */
  clusterDNS: string[];
  clusterDomain: string;
  /** The node's own resolv.conf text (its searches and options are inherited). */
  hostResolvConf: string;
}

const MAX_SEARCHES = 32;

function parseHost(text: string): { nameservers: string[]; searches: string[]; options: string[] } {
  const out = { nameservers: [] as string[], searches: [] as string[], options: [] as string[] };
  for (const line of text.split("\n")) {
    const [k, ...v] = line.trim().split(/\s+/);
    if (k === "nameserver" && v[0]) out.nameservers.push(v[0]);
    else if (k === "search" || k === "domain") out.searches = v;
    else if (k === "options") out.options.push(...v);
  }
  return out;
}

const uniq = (xs: string[]): string[] => [...new Set(xs.filter(Boolean))];

export function resolvConf(i: ResolvInput): string | undefined {
  const policy = i.dnsPolicy ?? "ClusterFirst";
  const host = parseHost(i.hostResolvConf);
  let base: { nameservers: string[]; searches: string[]; options: string[] } | undefined;
  const clusterFirst = (policy === "ClusterFirst" && !i.hostNetwork) || policy === "ClusterFirstWithHostNet";
  if (policy === "None") base = { nameservers: [], searches: [], options: [] };
  else if (clusterFirst && i.clusterDNS.length > 0)
    base = {
      nameservers: i.clusterDNS,
      searches: [
        `${i.namespace}.svc.${i.clusterDomain}`,
        `svc.${i.clusterDomain}`,
        i.clusterDomain,
        ...host.searches,
      ],
      options: ["ndots:5"],
    };
  else if (!i.dnsConfig) return undefined;
  else base = host;
  const cfg = i.dnsConfig ?? {};
  const options = new Map<string, string>();
  for (const o of [
    ...base.options,
    ...(cfg.options ?? []).map((x) => (x.value ? `${x.name}:${x.value}` : x.name)),
  ]) {
    options.set(o.split(":")[0]!, o);
  }
  const nameservers = uniq([...base.nameservers, ...(cfg.nameservers ?? [])]).slice(0, 3);
  const searches = uniq([...base.searches, ...(cfg.searches ?? [])]).slice(0, MAX_SEARCHES);
  return [
    ...nameservers.map((n) => `nameserver ${n}`),
    ...(searches.length ? [`search ${searches.join(" ")}`] : []),
    ...(options.size ? [`options ${[...options.values()].join(" ")}`] : []),
    "",
  ].join("\n");
}
