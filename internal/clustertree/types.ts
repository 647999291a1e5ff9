/**
 * Keys, names and object shapes of ClusterTree. Label/annotation keys are upstream Kosmos' exactly
 * (../shared/design/clustertree.md §0), so tools written for upstream find what they look for; keys
 * marked "ours" are additions.
 */
import type { KubeObject } from "../kube/index.ts";

export const VIRTUAL_NODE_PREFIX = "kosmos-";
/** Label and taint of every virtual node (`kosmos.io/node=true:NoSchedule`). */
export const NODE_LABEL = "kosmos.io/node";
export const NODE_TAINT = { key: NODE_LABEL, value: "true", effect: "NoSchedule" } as const;
/** Virtual node → the Cluster it stands for. */
export const OWNED_BY_CLUSTER = "kosmos-io/owned-by-cluster";
/** Virtual node mode; upstream persists only `one2cluster`, we write every mode. */
export const NODE_MODE_ANNOTATION = "leafNodeMode";
/** Marks a leaf pod Kosmos created. Leaf pods without it are never touched. */
export const POD_LABEL = "kosmos-io/pod";
/** Marks a leaf ConfigMap/Secret/ServiceAccount Kosmos copied from the root. */
export const GLOBAL_ANNOTATION = "kosmos.io/global";
/** (ours) The same mark as a label, so the leaf copies can be watched by selector. */
export const SYNCED_LABEL = "kosmos.io/synced";
/** (ours) On a leaf pod: the root pod's UID, so a leaf pod of an older root pod of the same name is told apart. */
export const ROOT_UID_ANNOTATION = "kosmos.io/root-pod-uid";
/** Per-pod leaf placement override (JSON: nodeSelector, affinity, tolerations, topologySpreadConstraints). */
export const CLUSTER_SELECTOR_ANNOTATION = "kosmos.io/cluster-selector";
/** Upstream records stripped labels here; always `{}` upstream, kept for tools that read it. */
export const TRIPPED_ANNOTATION = "kosmos-io/tripped";
/** A Cluster CR that is the root itself. */
export const ROOT_ROLE_ANNOTATION = "kosmos.io/cluster-role";
/** Pods of DaemonSets are not sent to leaves unless annotated with this. */
export const DAEMONSET_ALLOW = "kosmos-io/daemonset-allow";
/** The root's CA ConfigMap is renamed in the leaf (the leaf has its own kube-root-ca.crt). */
export const ROOT_CA = "kube-root-ca.crt";
export const MASTER_ROOT_CA = "master-root-ca.crt";
/** The Cluster finalizer, so its virtual nodes are removed before the Cluster goes. */
export const FINALIZER = "kosmos.io/cluster-manager";
/** Condition type on the Cluster (ours; the ClusterLink controller owns `Ready`). */
export const CONDITION = "LeafReady";
export const FIELD_MANAGER = "kosmos-clustertree";

export type LeafMode = "one2cluster" | "one2node" | "one2party";

export interface Taint {
  key: string;
  value?: string;
  effect: string;
  timeAdded?: string;
}

/**
 * Taints a node-lifecycle controller manages from the node's own state (`node.kubernetes.io/not-ready`,
 * `unreachable`, `unschedulable`, pressure, …). On a virtual node the root's controller owns them: a
 * leaf node's are never copied up, and the root's are kept as they are.
 */
export const isLifecycleTaint = (t: Taint): boolean => t.key.startsWith("node.kubernetes.io/");

/** What Kosmos copies into a leaf and collects again (copies.ts). */
export type LeafCopyKind = "configmaps" | "secrets" | "serviceaccounts";
export const COPY_KINDS: readonly LeafCopyKind[] = ["configmaps", "secrets", "serviceaccounts"];

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
  tolerationSeconds?: number;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

export type Quantities = Record<string, string>;

export interface NodeCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

export type NodeObject = KubeObject & {
  spec?: { unschedulable?: boolean; taints?: Taint[]; podCIDR?: string; podCIDRs?: string[] };
  status?: {
    capacity?: Quantities;
    allocatable?: Quantities;
    conditions?: NodeCondition[];
    addresses?: { type: string; address: string }[];
    nodeInfo?: Record<string, string>;
    daemonEndpoints?: { kubeletEndpoint?: { Port?: number } };
  };
};

export interface Container {
  name: string;
  image?: string;
  env?: {
    name: string;
    value?: string;
    valueFrom?: {
      configMapKeyRef?: { name?: string; key: string; optional?: boolean };
      secretKeyRef?: { name?: string; key: string; optional?: boolean };
      fieldRef?: { fieldPath: string };
      resourceFieldRef?: unknown;
    };
  }[];
  envFrom?: { configMapRef?: { name?: string }; secretRef?: { name?: string }; prefix?: string }[];
  resources?: { requests?: Quantities; limits?: Quantities };
  volumeMounts?: { name: string; mountPath: string; [k: string]: unknown }[];
  [k: string]: unknown;
}

export interface Volume {
  name: string;
  configMap?: { name?: string; [k: string]: unknown };
  secret?: { secretName?: string; [k: string]: unknown };
  projected?: {
    sources?: {
      serviceAccountToken?: { path: string; expirationSeconds?: number; audience?: string };
      configMap?: { name?: string; items?: { key: string; path: string }[]; [k: string]: unknown };
      secret?: { name?: string; items?: { key: string; path: string }[]; [k: string]: unknown };
      downwardAPI?: unknown;
      [k: string]: unknown;
    }[];
    [k: string]: unknown;
  };
  persistentVolumeClaim?: { claimName: string };
  [k: string]: unknown;
}

export interface NodeSelectorTerm {
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
  matchFields?: { key: string; operator: string; values?: string[] }[];
}

export interface Affinity {
  nodeAffinity?: {
    requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
    preferredDuringSchedulingIgnoredDuringExecution?: unknown[];
  };
  podAffinity?: unknown;
  podAntiAffinity?: unknown;
}

export interface PodSpec {
  nodeName?: string;
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  tolerations?: Toleration[];
  topologySpreadConstraints?: unknown[];
  schedulerName?: string;
  serviceAccountName?: string;
  serviceAccount?: string;
  automountServiceAccountToken?: boolean;
  imagePullSecrets?: { name: string }[];
  activeDeadlineSeconds?: number;
  terminationGracePeriodSeconds?: number;
  overhead?: Quantities;
  priority?: number;
  [k: string]: unknown;
}

export interface PodStatus {
  phase?: string;
  conditions?: { type: string; status: string; [k: string]: unknown }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
  startTime?: string;
  containerStatuses?: unknown[];
  initContainerStatuses?: unknown[];
  ephemeralContainerStatuses?: unknown[];
  qosClass?: string;
  message?: string;
  reason?: string;
  [k: string]: unknown;
}

export type PodObject = KubeObject & {
  metadata: KubeObject["metadata"] & { deletionGracePeriodSeconds?: number };
  spec: PodSpec;
  status?: PodStatus;
};

export type DataObject = KubeObject & {
  type?: string;
  data?: Record<string, string>;
  binaryData?: Record<string, string>;
};

/** What a virtual node stands for (known from the plan, see model.ts). */
export interface VirtualNodeRef {
  cluster: string;
  mode: LeafMode;
  /** one2node: the leaf node it stands for. */
  leafNode?: string;
  /** one2party: the selector of its leaf nodes. */
  selector?: LabelSelector;
}

/** On a root PV/PVC mirror (upstream): the leaf clusters that hold it, comma-separated. */
export const OWNERS_ANNOTATION = "kosmos-io/cluster-owners";
/** (ours) On a leaf PVC copy: the root PVC's UID; on a root PV mirror: the leaf PV's UID. */
export const SOURCE_UID_ANNOTATION = "kosmos.io/source-uid";
/** PV node-affinity keys whose values name a node (upstream rewrites these to the virtual node). */
export const HOSTNAME_KEYS = ["kubernetes.io/hostname", "beta.kubernetes.io/hostname", "openebs.io/nodename"];

export interface ObjectRef {
  kind?: string;
  apiVersion?: string;
  namespace?: string;
  name?: string;
  uid?: string;
  resourceVersion?: string;
}

export type PvcObject = KubeObject & {
  spec: {
    accessModes?: string[];
    resources?: { requests?: Quantities; limits?: Quantities };
    selector?: LabelSelector;
    storageClassName?: string;
    volumeMode?: string;
    volumeName?: string;
    dataSource?: ObjectRef;
    dataSourceRef?: ObjectRef;
    [k: string]: unknown;
  };
  status?: {
    phase?: string;
    capacity?: Quantities;
    conditions?: unknown[];
    allocatedResources?: Quantities;
    allocatedResourceStatuses?: Record<string, string>;
    [k: string]: unknown;
  };
};

export type PvObject = KubeObject & {
  spec: {
    capacity?: Quantities;
    claimRef?: ObjectRef;
    nodeAffinity?: { required?: { nodeSelectorTerms: NodeSelectorTerm[] } };
    persistentVolumeReclaimPolicy?: string;
    storageClassName?: string;
    [k: string]: unknown;
  };
  status?: { phase?: string; message?: string; reason?: string };
};
