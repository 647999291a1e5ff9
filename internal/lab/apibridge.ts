/**
 * How the lab's nodes and pods reach the API servers, as in a real cluster where they sit on the
 * network: each cluster's API server is advertised at an address on its own LAN (`apiAddress`, the
 * `.253` / `::fd` of the LAN, owned by the fabric namespace like a load balancer's address), so the
 * `default/kubernetes` Service's EndpointSlice is that address and every pod's in-cluster config
 * (ClusterIP:443 → the kube-proxy stand-in → that address) works unchanged.
 *
 * The API server process itself runs in the host's root namespace on 127.0.0.1 (kubectl on the host
 * uses that). The lab never adds an address or a route to the root namespace: two socat processes per
 * cluster carry the bytes through a Unix socket, which crosses namespaces by file path:
 *   fabric ns: TCP-LISTEN on <apiAddress>:<port>  →  <dir>/apiserver.sock
 *   root ns:   UNIX-LISTEN on <dir>/apiserver.sock →  127.0.0.1:<port>
 * TLS passes through untouched (the serving certificate names apiAddress).
 *
 * Pod traffic to any lab LAN (node IPs, API addresses) is masqueraded by its node, as a real CNI's
 * ip-masq rule does for destinations outside the cluster: the fabric has no routes to pod CIDRs.
 * Traffic between pod CIDRs (what ClusterLink carries) is never touched.
 */
import { familyOf, hostAt } from "./addr.ts";
import type { LabClusterPlan, LabPlan } from "./plan.ts";

/** The nft table (per node namespace) of the pod → LAN masquerade; the lab's own, not Kosmos'. */
export const EGRESS_TABLE = "kosmoslab-egress";

/** The address a lab cluster's API server is advertised at (its primary service family). */
export function apiAddress(c: LabClusterPlan): string {
  return c.ipFamily === "ipv6" ? hostAt(c.lan6, 0xfd) : hostAt(c.lan4, 253);
}

/** `https://<apiAddress>:<port>` (IPv6 bracketed). */
export function apiUrl(c: LabClusterPlan, port: number): string {
  const a = apiAddress(c);
  return `https://${a.includes(":") ? `[${a}]` : a}:${port}`;
}

/** The `kubernetes` Service's ClusterIP: the first address of the primary service CIDR. */
export function kubernetesServiceIP(c: LabClusterPlan): string {
  const primary =
    c.serviceCIDRs.find((s) => (c.ipFamily === "ipv6" ? familyOf(s) === 6 : familyOf(s) === 4)) ??
    c.serviceCIDRs[0];
  if (!primary) throw new Error(`cluster ${c.name} has no service CIDR`);
  return hostAt(primary, 1);
}

/** The socat argv pair of one cluster's bridge (pure). `fabricNs`: where the listener lives. */
export function bridgeArgv(
  c: LabClusterPlan,
  o: { fabricNs: string; port: number; socket: string },
): { fabric: string[]; host: string[] } {
  const a = apiAddress(c);
  const listen = a.includes(":")
    ? `TCP6-LISTEN:${o.port},bind=[${a}],fork,reuseaddr`
    : `TCP4-LISTEN:${o.port},bind=${a},fork,reuseaddr`;
  return {
    fabric: ["ip", "netns", "exec", o.fabricNs, "socat", listen, `UNIX-CONNECT:${o.socket}`],
    host: ["socat", `UNIX-LISTEN:${o.socket},fork,unlink-early,mode=600`, `TCP4:127.0.0.1:${o.port}`],
  };
}

/** `ip -n <fabric> addr add` lines for every cluster's API address (on the fabric's LAN link). */
export function fabricAddressLines(plan: LabPlan): string[] {
  return plan.clusters.map((c) => {
    const a = apiAddress(c);
    return a.includes(":") ? `addr add ${a}/128 dev ${c.bridge} nodad` : `addr add ${a}/32 dev ${c.bridge}`;
  });
}

/** The node's pod → LAN masquerade (pure): sources are the cluster's pod CIDRs, destinations every lab LAN. */
export function renderPodEgress(plan: LabPlan, cluster: LabClusterPlan): string {
  const pods4 = cluster.podCIDRs.filter((p) => familyOf(p) === 4);
  const pods6 = cluster.podCIDRs.filter((p) => familyOf(p) === 6);
  const lans4 = plan.clusters.map((c) => c.lan4);
  const lans6 = plan.clusters.map((c) => c.lan6);
  const rules: string[] = [];
  if (pods4.length)
    rules.push(`    ip saddr { ${pods4.join(", ")} } ip daddr { ${lans4.join(", ")} } masquerade`);
  if (pods6.length)
    rules.push(`    ip6 saddr { ${pods6.join(", ")} } ip6 daddr { ${lans6.join(", ")} } masquerade`);
  // Declare, delete, re-create: applying it twice leaves one copy.
  return [
    `table inet ${EGRESS_TABLE}`,
    `delete table inet ${EGRESS_TABLE}`,
    `table inet ${EGRESS_TABLE} {`,
    "  chain post {",
    "    type nat hook postrouting priority srcnat + 10; policy accept;",
    ...rules,
    "  }",
    "}",
    "",
  ].join("\n");
}

/**
 * A host port carried into a node (kind's `extraPortMappings`), the API bridge's mirror image (pure):
 *   root ns: TCP-LISTEN on 127.0.0.1:<hostPort>  →  <socket>
 *   node ns: UNIX-LISTEN on <socket>              →  <node address>:<containerPort>
 * A host program (the root API server reaching kosmos-clustertree's kubelet API) connects to
 * 127.0.0.1:<hostPort> and lands on the node's port; TLS passes through untouched.
 */
export function portMapArgv(o: {
  nodeNs: string;
  nodeAddress: string;
  containerPort: number;
  hostPort: number;
  socket: string;
}): { host: string[]; node: string[] } {
  const target = o.nodeAddress.includes(":")
    ? `TCP6:[${o.nodeAddress}]:${o.containerPort}`
    : `TCP4:${o.nodeAddress}:${o.containerPort}`;
  return {
    host: ["socat", `TCP4-LISTEN:${o.hostPort},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${o.socket}`],
    node: [
      "ip",
      "netns",
      "exec",
      o.nodeNs,
      "socat",
      `UNIX-LISTEN:${o.socket},fork,unlink-early,mode=600`,
      target,
    ],
  };
}
