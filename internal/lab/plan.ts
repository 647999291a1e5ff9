/**
 * Pure lab planning: LabConfig -> every namespace, link, address and route the lab will create,
 * plus the Kosmos Topology its agents are seeded with. No I/O here (see apply.ts).
 *
 * Shape of a lab named L:
 *   netns kl-L-fab       the "internet": a router with one veth lan<k> per cluster k (.254 / ::fe),
 *                        routes between cluster LANs; in gateway clusters only gateway candidates may cross.
 *   netns kl-L-sw        the cluster LANs' switches: one bridge lan<k> per cluster k (pure L2), ports =
 *                        the nodes' veths and the router's uplink up<k>. The router is not on a bridge
 *                        device because a Linux bridge has no hw_enc_features: routing a UDP-tunnel GSO
 *                        packet out of one segments it in software, which real routers never do.
 *   netns kl-L-<node>    a node: eth0 on its cluster LAN (192.168.k.n, fd00:1ab:k::n), bridge cni0 with
 *                        the first address of the node's pod CIDR, host-gw routes to the other nodes'
 *                        pod CIDRs (the lab's CNI), a kube-proxy-like nft table for the cluster's service.
 *   netns kl-L-<pod>     a pod: eth0 on the node's cni0, an echo server on TCP 8080.
 */
import type { Cluster, Node, Topology } from "../topology/index.ts";
import { familyOf, hostAt, prefixLen, subnet } from "./addr.ts";
import type { LabCluster, LabConfig, LabPortMapping } from "./config.ts";

export const LAB_ECHO_PORT = 8080;
export const LAB_AGENT_PORT = 5678;

export interface LabPodPlan {
  /** Full id: `<cluster>-<node short>-pod-<j>`. */
  id: string;
  /** Short name within the node: `pod-<j>`. */
  name: string;
  node: string;
  cluster: string;
  ns: string;
  /** Node-side veth name (inside the node namespace). */
  hostIf: string;
  ipv4?: string;
  ipv6?: string;
  /** The address other clusters use to reach this pod (global IP when the cluster maps its pod CIDR). */
  globalIPv4?: string;
}

export interface LabNodePlan {
  /** Topology node name: `<cluster>-<short>`. */
  name: string;
  short: string;
  cluster: string;
  clusterIndex: number;
  index: number;
  ns: string;
  /** Fabric-side veth name. */
  fabricIf: string;
  ipv4: string;
  ipv6: string;
  gatewayCandidate: boolean;
  /** Host ports carried to this node (config `extraPortMappings`; hostPort 0: chosen at `lab up`). */
  portMappings: LabPortMapping[];
  /** Node pod CIDRs (one per family the cluster uses). */
  podCIDRs: string[];
  pods: LabPodPlan[];
}

export interface LabServicePlan {
  cluster: string;
  name: string;
  ipv4?: string;
  ipv6?: string;
  port: number;
  backends4: string[];
  backends6: string[];
}

export interface LabClusterPlan {
  name: string;
  index: number;
  networkType: LabCluster["networkType"];
  ipFamily: LabCluster["ipFamily"];
  bridge: string;
  lan4: string;
  lan6: string;
  router4: string;
  router6: string;
  podCIDRs: string[];
  serviceCIDRs: string[];
  globalCIDRs: Record<string, string>;
}

export interface LabPlan {
  name: string;
  /** Prefix of every namespace this lab creates. */
  prefix: string;
  fabricNs: string;
  /** The L2 switches (one bridge per cluster LAN). */
  switchNs: string;
  clusters: LabClusterPlan[];
  nodes: LabNodePlan[];
  services: LabServicePlan[];
  topology: Topology;
}

export function labPrefix(labName: string): string {
  return `kl-${labName}-`;
}

function defaultPodCIDRs(c: LabCluster, k: number): string[] {
  const out: string[] = [];
  if (c.ipFamily !== "ipv6") out.push(`10.${(100 + k) % 256}.0.0/16`);
  if (c.ipFamily !== "ipv4") out.push(`fd10:${k.toString(16)}::/48`);
  return out;
}

function defaultServiceCIDRs(c: LabCluster, k: number): string[] {
  const out: string[] = [];
  if (c.ipFamily !== "ipv6") out.push(`10.${(200 + k) % 256}.0.0/16`);
  if (c.ipFamily !== "ipv4") out.push(`fd96:${k.toString(16)}::/112`);
  return out;
}

/** Map an address inside `local` CIDR to the same offset inside `global` (same prefix length). */
export function mapToGlobal(ip: string, globalCIDRs: Record<string, string>): string | undefined {
  for (const [local, global] of Object.entries(globalCIDRs)) {
    if (familyOf(local) !== familyOf(ip) || familyOf(ip) !== 4) continue;
    const len = prefixLen(local);
    const ipNum = ip.split(".").reduce((a, o) => a * 256 + Number(o), 0);
    const base = (local.split("/")[0] ?? "").split(".").reduce((a, o) => a * 256 + Number(o), 0);
    const size = 2 ** (32 - len);
    if (ipNum >= base && ipNum < base + size) return hostAt(global, ipNum - base);
  }
  return undefined;
}

export function planLab(labName: string, config: LabConfig): LabPlan {
  if (!/^[a-z0-9]{1,12}$/.test(labName)) {
    throw new Error(`lab name "${labName}" must be 1-12 lowercase letters/digits (it prefixes namespaces)`);
  }
  const prefix = labPrefix(labName);
  const clusters: LabClusterPlan[] = [];
  const nodes: LabNodePlan[] = [];
  const services: LabServicePlan[] = [];
  const topoClusters: Cluster[] = [];
  const topoNodes: Node[] = [];

  config.clusters.forEach((c, ci) => {
    const cp = planCluster(c, ci + 1);
    clusters.push(cp);
    topoClusters.push({
      name: c.name,
      networkType: c.networkType,
      ipFamily: c.ipFamily,
      podCIDRs: cp.podCIDRs,
      serviceCIDRs: cp.serviceCIDRs,
      globalCIDRs: c.globalCIDRs,
      bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
      localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
    });
    const clusterNodes = nodeSpecsOf(c).map((ns, ni) => planNode(prefix, c, cp, ns, ni + 1));
    nodes.push(...clusterNodes);
    for (const node of clusterNodes) {
      topoNodes.push({
        name: node.name,
        cluster: c.name,
        ipv4: c.ipFamily !== "ipv6" ? node.ipv4 : undefined,
        ipv6: c.ipFamily !== "ipv4" ? node.ipv6 : undefined,
        podCIDRs: node.podCIDRs,
        gatewayCandidate: node.gatewayCandidate,
        interfaceName: "eth0",
        underlayMTU: 1500,
      });
    }
    services.push(echoService(c.name, cp.serviceCIDRs, clusterNodes));
  });

  return {
    name: labName,
    prefix,
    fabricNs: `${prefix}fab`,
    switchNs: `${prefix}sw`,
    clusters,
    nodes,
    services,
    topology: { clusters: topoClusters, nodes: topoNodes },
  };
}

type LabClusterConfig = LabConfig["clusters"][number];
type LabNodeSpec = { name: string; gateway: boolean; extraPortMappings?: LabPortMapping[] };

/** Cluster `k` (1-based): its LAN (bridge, router) and its pod and service CIDRs. */
function planCluster(c: LabClusterConfig, k: number): LabClusterPlan {
  const lan4 = `192.168.${k}.0/24`;
  const lan6 = `fd00:1ab:${k.toString(16)}::/64`;
  return {
    name: c.name,
    index: k,
    networkType: c.networkType,
    ipFamily: c.ipFamily,
    bridge: `lan${k}`,
    lan4,
    lan6,
    router4: hostAt(lan4, 254),
    router6: hostAt(lan6, 0xfe),
    podCIDRs: c.podCIDRs ?? defaultPodCIDRs(c, k),
    serviceCIDRs: c.serviceCIDRs ?? defaultServiceCIDRs(c, k),
    globalCIDRs: c.globalCIDRs,
  };
}

/** The cluster's nodes as configured, or `nodes: N` expanded (the first gatewayCandidates are candidates). */
function nodeSpecsOf(c: LabClusterConfig): LabNodeSpec[] {
  return typeof c.nodes === "number"
    ? Array.from({ length: c.nodes }, (_, i) => ({
        name: `node-${i + 1}`,
        gateway: c.networkType === "gateway" && i < c.gatewayCandidates,
        extraPortMappings: [],
      }))
    : c.nodes;
}

/** Node `n` (1-based) of cluster `cp`: its namespace, underlay addresses, pod CIDRs and pods. */
function planNode(
  prefix: string,
  c: LabClusterConfig,
  cp: LabClusterPlan,
  ns: LabNodeSpec,
  n: number,
): LabNodePlan {
  const k = cp.index;
  const pod4 = cp.podCIDRs.find((p) => familyOf(p) === 4);
  const pod6 = cp.podCIDRs.find((p) => familyOf(p) === 6);
  const name = `${c.name}-${ns.name}`;
  const nodePod4 = pod4 ? subnet(pod4, 24, n) : undefined;
  const nodePod6 = pod6 ? subnet(pod6, 64, n) : undefined;
  const node: LabNodePlan = {
    name,
    short: ns.name,
    cluster: c.name,
    clusterIndex: k,
    index: n,
    ns: `${prefix}${name}`,
    fabricIf: `c${k}n${n}`,
    ipv4: hostAt(cp.lan4, n),
    ipv6: hostAt(cp.lan6, n),
    gatewayCandidate: ns.gateway,
    portMappings: ns.extraPortMappings ?? [],
    podCIDRs: [nodePod4, nodePod6].filter((x): x is string => x !== undefined),
    pods: [],
  };
  for (let j = 1; j <= c.podsPerNode; j++) {
    const id = `${name}-pod-${j}`;
    const ipv4 = nodePod4 ? hostAt(nodePod4, j + 1) : undefined;
    node.pods.push({
      id,
      name: `pod-${j}`,
      node: name,
      cluster: c.name,
      ns: `${prefix}${id}`,
      hostIf: `pod${j}`,
      ipv4,
      ipv6: nodePod6 ? hostAt(nodePod6, j + 1) : undefined,
      globalIPv4: ipv4 ? mapToGlobal(ipv4, c.globalCIDRs) : undefined,
    });
  }
  return node;
}

/** The cluster's "echo" service: the 10th address of its service CIDRs, every pod a backend. */
function echoService(cluster: string, serviceCIDRs: string[], nodes: LabNodePlan[]): LabServicePlan {
  const svc4 = serviceCIDRs.find((s) => familyOf(s) === 4);
  const svc6 = serviceCIDRs.find((s) => familyOf(s) === 6);
  const pods = nodes.flatMap((n) => n.pods);
  return {
    cluster,
    name: "echo",
    ipv4: svc4 ? hostAt(svc4, 10) : undefined,
    ipv6: svc6 ? hostAt(svc6, 10) : undefined,
    port: LAB_ECHO_PORT,
    backends4: pods.flatMap((p) => (p.ipv4 ? [p.ipv4] : [])),
    backends6: pods.flatMap((p) => (p.ipv6 ? [p.ipv6] : [])),
  };
}

export function allPods(plan: LabPlan): LabPodPlan[] {
  return plan.nodes.flatMap((n) => n.pods);
}
