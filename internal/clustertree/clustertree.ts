/**
 * kosmos-clustertree: leaf clusters as virtual nodes of the root cluster. Informers on the root's
 * Clusters, virtual Nodes, Pods, ConfigMaps and Secrets, and per leaf on its Nodes, Pods and copies;
 * work queues — clusters (connection + virtual nodes), pods (root ↔ leaf), copies (ConfigMaps,
 * Secrets, ServiceAccounts in leaves), volumes — each with per-key exponential backoff. No polling:
 * the only timer is the node heartbeat (a Lease per virtual node every 10 s while the leaf's /version
 * answers), which is what a kubelet does. With leader election on, only the holder of the
 * `kosmos-clustertree` Lease works.
 *
 * This file assembles the parts: tree.ts (shared state), queues.ts, connections.ts (leaves),
 * reconcile.ts (the cluster queue), wiring.ts (root informers), election.ts (Lease + readiness).
 */
import { KubeClient, kubeConfigFromYaml } from "../kube/index.ts";
import { silentLogger } from "../observability/index.ts";
import { startHeartbeat, stopLeaf } from "./connections.ts";
import { readiness, startTreeElection } from "./election.ts";
import { eventRecorder } from "./events.ts";
import type { Leaf } from "./leaf.ts";
import type { NodePlan } from "./model.ts";
import { type Counters, newCounters } from "./pods.ts";
import { makePodEnv, makeQueues } from "./queues.ts";
import { reconcileCluster } from "./reconcile.ts";
import { type ClusterTreeOptions, createRootInformers, type Tree } from "./tree.ts";
import type { VirtualNodeRef } from "./types.ts";
import { wireRootInformers } from "./wiring.ts";

export { CLUSTERS_PATH, type ClusterTreeOptions } from "./tree.ts";

export interface LeafStatus {
  cluster: string;
  server: string;
  synced: boolean;
  answering: boolean;
  trouble?: string;
  nodes: string[];
}

export interface RunningClusterTree {
  isLeader(): boolean;
  ready(): { ready: boolean; reason: string };
  /** The virtual nodes planned per cluster, as last applied. */
  plans(): Map<string, NodePlan>;
  leaves(): LeafStatus[];
  /** Where a root pod runs: its leaf's client (for the kubelet API). */
  leafOfPod(ns: string, name: string): { cluster: string; client: KubeClient; node?: string } | undefined;
  counters: Counters;
  queueLengths(): Record<string, number>;
  idle(): Promise<void>;
  stop(): Promise<void>;
}

/** The shared state, its queues paused unless leader election is off. */
function buildTree(o: ClusterTreeOptions): Tree {
  const log = o.logger ?? silentLogger();
  const kc = typeof o.kubeconfig === "string" ? kubeConfigFromYaml(o.kubeconfig) : o.kubeconfig;
  const root = new KubeClient(kc);
  const backoff = { minBackoffMs: o.minBackoffMs ?? 200, maxBackoffMs: o.maxBackoffMs ?? 30_000 };
  const inf = createRootInformers({ client: root, logger: log, ...backoff });
  const leaves = new Map<string, Leaf>();
  const refs = new Map<string, VirtualNodeRef>();
  const counters = newCounters();
  const leafGone = new Map<string, string>();
  const event = eventRecorder(root, log);
  const podEnv = makePodEnv({ root, log, pvGone: new Map(), inf, refs, leaves, leafGone, event, counters });
  const leader = o.leaderElection === false;
  const q = makeQueues({
    log,
    backoff,
    podWorkers: o.podWorkers ?? 32,
    podEnv,
    // runs only once the tree below exists (the queue starts work after an add)
    reconcileCluster: (n) => reconcileCluster(t, n),
    leader,
  });
  const t: Tree = {
    o,
    log,
    root,
    namespace: o.namespace ?? "kosmos-system",
    backoff,
    inf,
    leaves,
    plans: new Map<string, NodePlan>(),
    refs,
    counters,
    leafGone,
    podEnv,
    q,
    leader,
  };
  return t;
}

function leafStatus(t: Tree, l: Leaf): LeafStatus {
  return {
    cluster: l.name,
    server: l.client.server.origin,
    synced: l.synced(),
    answering: l.answering,
    ...(l.trouble() ? { trouble: l.trouble() } : {}),
    nodes: (t.plans.get(l.name)?.nodes ?? []).map((d) => d.name),
  };
}

export async function startClusterTree(o: ClusterTreeOptions): Promise<RunningClusterTree> {
  const t = buildTree(o);
  const beat = startHeartbeat(t, o.heartbeatMs ?? 10_000);
  wireRootInformers(t);
  for (const i of t.inf.all) i.start();
  const elector = startTreeElection(t);
  return {
    isLeader: () => t.leader,
    ready: () => readiness(t, elector),
    plans: () => t.plans,
    leaves: () => [...t.leaves.values()].map((l) => leafStatus(t, l)),
    leafOfPod: (ns, name) => {
      const p = t.inf.pods.get(name, ns);
      const ref = p ? t.refs.get(p.spec.nodeName ?? "") : undefined;
      const l = ref ? t.leaves.get(ref.cluster) : undefined;
      return l ? { cluster: l.name, client: l.client, node: p?.spec.nodeName } : undefined;
    },
    counters: t.counters,
    queueLengths: () => ({
      clusters: t.q.clusters.length,
      pods: t.q.pods.length,
      copies: t.q.copies.length,
      volumes: t.q.volumes.length,
    }),
    idle: async () => {
      for (const q of t.q.all) await q.idle();
    },
    async stop() {
      clearInterval(beat);
      for (const q of t.q.all) q.stop();
      await elector?.stop();
      for (const i of t.inf.all) await i.stop();
      for (const n of [...t.leaves.keys()]) await stopLeaf(t, n);
      t.root.close();
    },
  };
}
