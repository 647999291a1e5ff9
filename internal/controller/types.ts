/** Shapes of the Kosmos custom resources (kosmos.io/v1alpha1) as the controller reads them. */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  generation?: number;
  uid?: string;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  deletionTimestamp?: string;
  finalizers?: string[];
}

export interface CidrPair {
  ip?: string;
  ip6?: string;
}

export interface ClusterLinkOptions {
  enable?: boolean;
  cni?: string;
  defaultNICName?: string;
  networkType?: "p2p" | "gateway";
  /** Upstream uses "all" for dual stack; "dual" is accepted too. */
  ipFamily?: "ipv4" | "ipv6" | "all" | "dual";
  bridgeCIDRs?: CidrPair;
  localCIDRs?: CidrPair;
  globalCIDRsMap?: Record<string, string>;
  nodeElasticIPMap?: Record<string, string>;
  /** Upstream spelling (json:"clusterpodCIDRs"). */
  clusterpodCIDRs?: string[];
  /** Upstream spelling (json:"useexternalapiserver"). */
  useexternalapiserver?: boolean;
  nicNodeNames?: { interfaceName: string; nodeName: string[] }[];
  mtu?: number;
}

/** Upstream's ClusterTree options (what `kosmosctl join --leaf-model` writes). */
export interface LeafModel {
  leafNodeName?: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string; timeAdded?: string }[];
  nodeSelector?: {
    nodeName?: string;
    labelSelector?: {
      matchLabels?: Record<string, string>;
      matchExpressions?: { key: string; operator: string; values?: string[] }[];
    };
  };
}

export interface ClusterTreeOptions {
  enable?: boolean;
  leafModels?: LeafModel[];
}

export interface ClusterObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    kubeconfig?: string;
    kubeconfigSecretRef?: { name: string; namespace?: string; key?: string };
    namespace?: string;
    clusterLinkOptions?: ClusterLinkOptions;
    clusterTreeOptions?: ClusterTreeOptions;
  };
  status?: {
    clusterLinkStatus?: { podCIDRs?: string[]; serviceCIDRs?: string[] };
    clusterTreeStatus?: { leafNodeItems?: { leafNodeName: string }[] };
    nodeCount?: number;
    conditions?: {
      type: string;
      status: "True" | "False" | "Unknown";
      reason?: string;
      message?: string;
      lastTransitionTime?: string;
    }[];
  };
}

export interface ClusterNodeSpec {
  /** Upstream's tools may omit it; see mapping.clusterOf. */
  clusterName?: string;
  nodeName?: string;
  ip?: string;
  ip6?: string;
  podCIDRs?: string[];
  /** `gateway` marks a gateway candidate; compared case-insensitively like upstream. */
  roles?: string[];
  interfaceName?: string;
  elasticip?: string;
}

export interface ClusterNodeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: ClusterNodeSpec;
}

export const GROUP = "kosmos.io";
export const VERSION = "v1alpha1";
/** Label put on ClusterNodes the controller owns: value is the cluster name. */
export const CLUSTER_LABEL = "kosmos.io/cluster";
/** Node label that makes a member node a gateway candidate. */
export const GATEWAY_LABEL = "kosmos.io/gateway";

/** Upstream compares roles case-insensitively (`roles: [Gateway]` is a gateway too). */
export const isGatewayRole = (roles: string[] | undefined): boolean =>
  (roles ?? []).some((r) => r.toLowerCase() === "gateway");

/** The cluster of a ClusterNode: `spec.clusterName`, else our `kosmos.io/cluster` label (upstream may omit it). */
export const clusterOf = (n: ClusterNodeObject): string | undefined =>
  n.spec?.clusterName || n.metadata.labels?.[CLUSTER_LABEL] || undefined;

/** The Secret holding a member's kubeconfig, as `kosmosctl join` and the lab name it (kosmos-system). */
export const memberSecretName = (cluster: string): string => `kosmos-member-${cluster}`;
