/** Pure mapping: Kosmos custom resources → the Topology the agents consume. */
import { createHash } from "node:crypto";
import { type IpFamily, type Topology, TopologySchema } from "../topology/index.ts";
import { FINGERPRINT_ANNOTATION } from "./discovery.ts";
import type { ClusterNodeObject, ClusterNodeSpec, ClusterObject } from "./types.ts";
import { clusterOf, GATEWAY_LABEL, isGatewayRole } from "./types.ts";

export function mapIpFamily(v: string | undefined): IpFamily {
  if (v === "all" || v === "dual") return "dual";
  if (v === "ipv6") return "ipv6";
  return "ipv4";
}

const uniq = (xs: string[]): string[] => [...new Set(xs)];

/**
 * Cluster + ClusterNodes → Topology. Pod CIDRs: the `clusterpodCIDRs` override, else the detected ones in
 * status. Elastic IP: ClusterNode `elasticip`, else `nodeElasticIPMap[nodeName]`. Nodes of unknown or
 * disabled clusters are dropped. Output is sorted, so equal inputs give equal (hashable) topologies.
 */
export function toTopology(clusters: ClusterObject[], clusterNodes: ClusterNodeObject[]): Topology {
  const enabled = clusters
    .filter((c) => c.spec?.clusterLinkOptions?.enable !== false)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const byName = new Map<string | undefined, ClusterObject>(enabled.map((c) => [c.metadata.name, c]));
  const outClusters = enabled.map((c) => {
    const o = c.spec.clusterLinkOptions ?? {};
    const status = c.status?.clusterLinkStatus ?? {};
    const podCIDRs =
      o.clusterpodCIDRs && o.clusterpodCIDRs.length > 0 ? o.clusterpodCIDRs : (status.podCIDRs ?? []);
    return {
      name: c.metadata.name,
      networkType: o.networkType ?? "p2p",
      ipFamily: mapIpFamily(o.ipFamily),
      podCIDRs: uniq(podCIDRs),
      serviceCIDRs: uniq(status.serviceCIDRs ?? []),
      globalCIDRs: { ...(o.globalCIDRsMap ?? {}) },
      ...(o.bridgeCIDRs ? { bridgeCIDRs: o.bridgeCIDRs } : {}),
      ...(o.localCIDRs ? { localCIDRs: o.localCIDRs } : {}),
      ...(o.mtu !== undefined ? { mtu: o.mtu } : {}),
    };
  });
  const nodes = clusterNodes
    .filter((n) => byName.has(clusterOf(n)))
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map((n) => {
      const s = n.spec ?? {};
      const cluster = clusterOf(n)!;
      const eipMap = byName.get(cluster)?.spec.clusterLinkOptions?.nodeElasticIPMap ?? {};
      const elasticIP = s.elasticip || eipMap[s.nodeName ?? n.metadata.name];
      return {
        name: n.metadata.name,
        cluster,
        ...(s.ip ? { ipv4: s.ip } : {}),
        ...(s.ip6 ? { ipv6: s.ip6 } : {}),
        podCIDRs: uniq(s.podCIDRs ?? []),
        gatewayCandidate: isGatewayRole(s.roles),
        ...(elasticIP ? { elasticIP } : {}),
        ...(s.interfaceName ? { interfaceName: s.interfaceName } : {}),
      };
    });
  return TopologySchema.parse({ clusters: outClusters, nodes });
}

/** Stable content hash of a topology (sorted keys), to push only on change. */
export function topologyHash(t: Topology): string {
  const canon = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(canon).join(",")}]`;
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      return `{${Object.keys(o)
        .sort()
        .filter((k) => o[k] !== undefined)
        .map((k) => `${JSON.stringify(k)}:${canon(o[k])}`)
        .join(",")}}`;
    }
    return JSON.stringify(v);
  };
  return createHash("sha256").update(canon(t)).digest("hex");
}

/** ClusterNode object name for a member node: `<cluster>-<node>`, a DNS-1123 label (hashed when too long). */
export function clusterNodeName(cluster: string, node: string): string {
  const raw = `${cluster}-${node}`.toLowerCase().replace(/[^a-z0-9-]/g, "-");
  if (raw.length <= 63) return raw.replace(/-+$/, "");
  const h = createHash("sha256").update(raw).digest("hex").slice(0, 8);
  return `${raw.slice(0, 54).replace(/-+$/, "")}-${h}`;
}

/** The subset of a core/v1 Node the controller reads. */
export interface MemberNode {
  metadata?: { name?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: { type: string; address: string }[] };
}

/** Desired ClusterNode specs for the Nodes of one member cluster (pure). */
export function desiredClusterNodes(cluster: ClusterObject, nodes: MemberNode[]): ClusterNodeObject[] {
  const o = cluster.spec.clusterLinkOptions ?? {};
  const nicFor = (node: string): string | undefined => {
    const hit = (o.nicNodeNames ?? []).find((e) => e.nodeName.includes(node));
    if (hit) return hit.interfaceName;
    return o.defaultNICName && o.defaultNICName !== "*" ? o.defaultNICName : undefined;
  };
  // In a gateway cluster without any labelled node, every node may be elected gateway.
  const anyLabelled = nodes.some((n) => n.metadata?.labels?.[GATEWAY_LABEL] === "true");
  const allCandidates = o.networkType === "gateway" && !anyLabelled;
  return nodes
    .filter((n) => n.metadata?.name)
    .map((n) => {
      const nodeName = n.metadata!.name!;
      const internal = (n.status?.addresses ?? [])
        .filter((a) => a.type === "InternalIP")
        .map((a) => a.address);
      const ip = internal.find((a) => !a.includes(":"));
      const ip6 = internal.find((a) => a.includes(":"));
      const podCIDRs = n.spec?.podCIDRs?.length ? n.spec.podCIDRs : n.spec?.podCIDR ? [n.spec.podCIDR] : [];
      const spec: ClusterNodeSpec = { clusterName: cluster.metadata.name, nodeName, podCIDRs };
      if (ip) spec.ip = ip;
      if (ip6) spec.ip6 = ip6;
      if (allCandidates || n.metadata?.labels?.[GATEWAY_LABEL] === "true") spec.roles = ["gateway"];
      const nic = nicFor(nodeName);
      if (nic) spec.interfaceName = nic;
      const eip = o.nodeElasticIPMap?.[nodeName];
      if (eip) spec.elasticip = eip;
      const fp = n.metadata?.annotations?.[FINGERPRINT_ANNOTATION];
      return {
        metadata: {
          name: clusterNodeName(cluster.metadata.name, nodeName),
          ...(fp ? { annotations: { [FINGERPRINT_ANNOTATION]: fp } } : {}),
        },
        spec,
      };
    })
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}
