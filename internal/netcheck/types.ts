/**
 * Data model of `kosmosctl check`: an inventory of endpoints (nodes and pods) and the agents that
 * run probes for them, the pairs to check, and the results. Pure types, JSON-safe.
 */
import type { AgentTarget } from "../exec/index.ts";

export type Family = 4 | 6;
export type CheckMode = "pod" | "node" | "node-to-pod" | "pod-to-node";
export type CheckProto = "icmp" | "tcp" | "udp" | "dns";

export const CHECK_MODES: readonly CheckMode[] = ["pod", "node", "node-to-pod", "pod-to-node"];
export const CHECK_PROTOS: readonly CheckProto[] = ["icmp", "tcp", "udp", "dns"];

export interface ClusterInfo {
  name: string;
  networkType: "p2p" | "gateway";
  ipFamily: "ipv4" | "ipv6" | "dual";
  /**
   * Whether pods of this cluster reach addresses outside the cluster through an egress SNAT of the
   * CNI (real clusters: yes; the lab: no). Without it, pod → node of another cluster is not a path
   * anybody provides, and such pairs are skipped.
   */
  podEgressSNAT: boolean;
  /**
   * Inventory files: a kubeconfig of this cluster (path, relative to the file), for the expected
   * answers of the clusterset-name check; without one they come from the agents' replicas.
   */
  kubeconfig?: string;
}

export interface Endpoint {
  /** Unique id, e.g. `c1-node-1` or `c1-node-1-pod-1`. */
  id: string;
  kind: "node" | "pod";
  cluster: string;
  /** The node whose agent runs this endpoint's probes (a node: itself). */
  node: string;
  ipv4?: string;
  ipv6?: string;
  /** The IPv4 other clusters use to reach this pod (global IP when its cluster maps its pod CIDR). */
  globalIPv4?: string;
  /** Nodes: gateway candidate of a gateway cluster (the only nodes with cross-cluster underlay). */
  gatewayCandidate?: boolean;
  /** argv prefix that enters the endpoint's network namespace on its node (empty for nodes). */
  execPrefix: string[];
  /** TCP listener to probe: port, families it listens on, and what it answers (pods' echo servers). */
  tcp?: { port: number; families: Family[]; expect?: string };
  /**
   * UDP port to probe and what its echo answers. Without `expect`, a closed port is fine: ICMP port
   * unreachable proves the host was reached.
   */
  udp?: { port: number; expect?: string };
  /** DNS server port on this endpoint, when it serves DNS. */
  dnsPort?: number;
  /**
   * Pods: the resolver the clusterset-name check asks (e.g. the node's agent DNS address); unset:
   * `--resolver` decides (default: the first nameserver of the pod's own resolv.conf).
   */
  dnsResolver?: string;
}

export interface Inventory {
  /** Lab name or cluster set name (recorded in the results file). */
  name: string;
  clusters: ClusterInfo[];
  endpoints: Endpoint[];
  /** Agent of each node (exec + /v1/plan + /v1/state). */
  agents: Record<string, AgentTarget>;
}

export interface ProbeSpec {
  proto: CheckProto;
  ip: string;
  family: Family;
  port?: number;
  /** IP packet size (bytes) sent with don't-fragment (icmp only). */
  size?: number;
  /** What the target must answer (tcp echo) or the encoded DNS query (dns). */
  expect?: string;
}

export interface Pair {
  key: string;
  src: Endpoint;
  dst: Endpoint;
  cross: boolean;
  probes: ProbeSpec[];
}

export interface SkippedPair {
  src: string;
  dst: string;
  reason: string;
}

export interface ProbeOutcome extends ProbeSpec {
  ok: boolean;
  ms: number;
  detail: string;
  /** How many times it was tried (when more than once). */
  attempts?: number;
}

export type Hop =
  | "agent"
  | "plan"
  | "route"
  | "neighbor"
  | "fdb"
  | "gateway"
  | "mtu"
  | "target"
  | "cni"
  | "drift";

export interface Finding {
  hop: Hop;
  /** Node the finding is about. */
  node?: string;
  /** The route (or object) concerned, in `ip route` words. */
  route?: string;
  message: string;
}

export interface PairResult {
  sn: number;
  key: string;
  src: string;
  srcCluster: string;
  srcNode: string;
  dst: string;
  dstCluster: string;
  dstNode: string;
  ok: boolean;
  probes: ProbeOutcome[];
  diagnosis?: Finding[];
}

export interface CheckOptions {
  mode: CheckMode;
  protocols: CheckProto[];
  families: Family[];
  srcClusters?: string[];
  dstClusters?: string[];
  /** IP packet size with don't-fragment for icmp probes. */
  packetSize?: number;
  concurrency: number;
  /** Per-probe timeout, seconds. */
  timeoutSec: number;
  /** Failed probes are tried again this many times (at the end) before a pair counts as failed. */
  retries?: number;
  /** Include pairs inside one cluster (default true). */
  intraCluster: boolean;
  /** DNS name the dns probes ask for. */
  dnsName: string;
}

export interface CheckReport {
  version: 1;
  inventory: string;
  startedAt: string;
  durationMs: number;
  options: CheckOptions;
  total: number;
  passed: number;
  failed: number;
  probes: number;
  skipped: SkippedPair[];
  /** Agents that could not run probes (their pairs are failures). */
  agentErrors: Record<string, string>;
  results: PairResult[];
  /** Set by --resume: how many pairs were re-checked. */
  resumed?: number;
}
