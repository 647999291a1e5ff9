/** Shapes of the Kosmos custom resources (kosmos.io/v1alpha1) as the controller reads them. */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  resourceVersion?: string;
  generation?: number;
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

export interface ClusterObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: {
    kubeconfig?: string;
    kubeconfigSecretRef?: { name: string; namespace?: string; key?: string };
    namespace?: string;
    clusterLinkOptions?: ClusterLinkOptions;
  };
  status?: {
    clusterLinkStatus?: { podCIDRs?: string[]; serviceCIDRs?: string[] };
    observedGeneration?: number;
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
  clusterName: string;
  nodeName: string;
  ip?: string;
  ip6?: string;
  podCIDRs?: string[];
  roles?: "gateway"[];
  interfaceName?: string;
  elasticip?: string;
}

export interface ClusterNodeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: ClusterNodeSpec;
}

export const GROUP = "kosmos.io";
export const VERSION = "v1alpha1";
/** Label put on ClusterNodes the controller owns: value is the cluster name. */
export const CLUSTER_LABEL = "kosmos.io/cluster";
/** Node label that makes a member node a gateway candidate. */
export const GATEWAY_LABEL = "kosmos.io/gateway";
