/**
 * The shared state of one running clustertree: the root client and informers, the leaf connections,
 * the applied plans and the virtual-node index, and the three work queues. Built once by
 * startClusterTree; the other files (queues, connections, reconcile, wiring, election) act on it.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { ClusterObject } from "../controller/index.ts";
import { Informer, type KubeClient, objectKey, type WorkQueue } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { HealthThresholds } from "./health.ts";
import type { Leaf } from "./leaf.ts";
import type { NodePlan } from "./model.ts";
import type { NodeEnv } from "./nodes.ts";
import { type Counters, carried, type PodEnv } from "./pods.ts";
import {
  COPY_KINDS,
  type DataObject,
  NODE_LABEL,
  type NodeObject,
  type PodObject,
  type PvcObject,
  type PvObject,
  SYNCED_LABEL,
  type VirtualNodeRef,
} from "./types.ts";

export const CLUSTERS_PATH = "/apis/kosmos.io/v1alpha1/clusters";

export interface ClusterTreeOptions {
  /** Root cluster: kubeconfig YAML or a loaded KubeConfig. */
  kubeconfig: string | KubeConfig;
  /** Namespace of the election Lease and of kubeconfig Secrets (default kosmos-system). */
  namespace?: string;
  identity?: string;
  leaderElection?: boolean;
  leaseDurationSeconds?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Address of the kubelet API the virtual nodes advertise (this process), and its port. */
  nodeAddress?: string;
  kubeletPort?: number;
  /**
   * An InternalDNS address the virtual nodes advertise besides `nodeAddress`, for setups where the
   * root API server reaches this process by a name (its `--kubelet-preferred-address-types` put
   * InternalDNS first): the lab's API servers reach it as `localhost` through a port mapping.
   */
  nodeDnsName?: string;
  /** Node Lease renewal period (default 10 s, as upstream). */
  heartbeatMs?: number;
  /**
   * Upstream's opt-in NotReady mode (`--Update-RootNode-Status-Notready`): an unreachable leaf's
   * virtual nodes keep their Lease and say Ready=False after `notReadyAfterMs` (health.ts). Off:
   * the Lease stops and the root's node-lifecycle controller marks them Unknown (upstream's default).
   */
  notReady?: Partial<HealthThresholds>;
  /** Parallel pod reconciles (default 32: each mostly waits on an API server). */
  podWorkers?: number;
  logger?: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface Backoff {
  minBackoffMs: number;
  maxBackoffMs: number;
}

/** The root cluster's informers: Clusters, Kosmos' virtual Nodes, Pods, ConfigMaps and Secrets. */
export interface RootInformers {
  clusters: Informer<ClusterObject>;
  vnodes: Informer<NodeObject>;
  pods: Informer<PodObject>;
  configMaps: Informer<DataObject>;
  secrets: Informer<DataObject>;
  /** Every PVC (a pod may use any), and the PVs Kosmos mirrored from leaves. */
  pvcs: Informer<PvcObject>;
  pvs: Informer<PvObject>;
  all: Informer<{ metadata: { name: string } }>[];
}

export interface TreeQueues {
  clusters: WorkQueue;
  pods: WorkQueue;
  copies: WorkQueue;
  /** `pvc/<cluster>/<ns>/<name>` and `pv/<cluster>/<name>` (volumes.ts). */
  volumes: WorkQueue;
  all: WorkQueue[];
  /** Add a pod key, remembering when it was first queued (queue-wait metric). */
  enqueuePod(key: string): void;
}

/** What the files of this module share. `leader` changes with the Lease. */
export interface Tree {
  o: ClusterTreeOptions;
  log: Logger;
  root: KubeClient;
  namespace: string;
  backoff: Backoff;
  inf: RootInformers;
  /** Connections, by Cluster name. */
  leaves: Map<string, Leaf>;
  /** The virtual nodes planned per cluster, as last applied. */
  plans: Map<string, NodePlan>;
  /** Virtual node name -> its cluster and leaf node(s). */
  refs: Map<string, VirtualNodeRef>;
  counters: Counters;
  leafGone: Map<string, string>;
  podEnv: PodEnv;
  q: TreeQueues;
  leader: boolean;
}

export function createRootInformers(common: { client: KubeClient; logger: Logger } & Backoff): RootInformers {
  const clusters = new Informer<ClusterObject>({ ...common, path: CLUSTERS_PATH, name: "clusters" });
  const vnodes = new Informer<NodeObject>({
    ...common,
    path: "/api/v1/nodes",
    labelSelector: `${NODE_LABEL}=true`,
    name: "virtual-nodes",
  });
  const pods = new Informer<PodObject>({ ...common, path: "/api/v1/pods", name: "pods" });
  const configMaps = new Informer<DataObject>({ ...common, path: "/api/v1/configmaps", name: "configmaps" });
  const secrets = new Informer<DataObject>({ ...common, path: "/api/v1/secrets", name: "secrets" });
  const pvcs = new Informer<PvcObject>({ ...common, path: "/api/v1/persistentvolumeclaims", name: "pvcs" });
  const pvs = new Informer<PvObject>({
    ...common,
    path: "/api/v1/persistentvolumes",
    labelSelector: `${SYNCED_LABEL}=true`,
    name: "pv-mirrors",
  });
  const all = [clusters, vnodes, pods, configMaps, secrets, pvcs, pvs] as Informer<{
    metadata: { name: string };
  }>[];
  return { clusters, vnodes, pods, configMaps, secrets, pvcs, pvs, all };
}

/** What applying a leaf's virtual nodes needs. */
export function nodeEnvOf(t: Tree, leaf: Leaf): NodeEnv {
  return {
    root: t.root,
    rootNode: (n) => t.inf.vnodes.get(n),
    address: t.o.nodeAddress ?? "127.0.0.1",
    port: t.o.kubeletPort ?? 10250,
    ...(t.o.nodeDnsName ? { dnsName: t.o.nodeDnsName } : {}),
    kubeletVersion: leaf.kubeletVersion || "v0.0.0-kosmos",
  };
}

/** Queue the carried root pods on a cluster's virtual nodes (in `ns`; without a leaf pod yet). */
export function enqueuePodsOf(t: Tree, cluster: string, ns?: string, onlyWithoutLeafPod = false): void {
  const leaf = t.leaves.get(cluster);
  for (const p of t.inf.pods.list()) {
    if (ns && p.metadata.namespace !== ns) continue;
    if (t.refs.get(p.spec.nodeName ?? "")?.cluster !== cluster) continue;
    if (onlyWithoutLeafPod && leaf?.pods.get(p.metadata.name, p.metadata.namespace)) continue;
    if (!carried(p)) continue;
    t.q.enqueuePod(objectKey(p));
  }
}

/** Queue a leaf's copies (of namespace `ns`, or all) to be looked at: kept if needed, else collected. */
export function enqueueCopiesOf(t: Tree, cluster: string, ns?: string): void {
  const leaf = t.leaves.get(cluster);
  if (!leaf) return;
  for (const kind of COPY_KINDS)
    for (const c of leaf.copies(kind).list())
      if (!ns || c.metadata.namespace === ns)
        t.q.copies.add(`${cluster}/${kind}/${c.metadata.namespace}/${c.metadata.name}`);
}
