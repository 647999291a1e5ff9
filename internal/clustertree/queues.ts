/**
 * The work queues — clusters (connection + virtual nodes), pods (root ↔ leaf), copies (ConfigMaps,
 * Secrets and ServiceAccounts in leaves), volumes — each with per-key exponential backoff, and the
 * PodEnv the pod and copy reconciles read the root and the leaves through.
 */
import { type KubeClient, WorkQueue } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import { reconcileCopy } from "./copies.ts";
import type { Leaf } from "./leaf.ts";
import { type Counters, type PodEnv, reconcilePod, WaitError } from "./pods.ts";
import type { Backoff, RootInformers, TreeQueues } from "./tree.ts";
import type { VirtualNodeRef } from "./types.ts";
import { reconcileVolume } from "./volumes.ts";

export function makePodEnv(s: {
  root: KubeClient;
  log: Logger;
  pvGone: Map<string, string>;
  inf: RootInformers;
  refs: Map<string, VirtualNodeRef>;
  leaves: Map<string, Leaf>;
  leafGone: Map<string, string>;
  event: PodEnv["event"];
  counters: Counters;
}): PodEnv {
  return {
    root: s.root,
    log: s.log,
    pvGone: s.pvGone,
    rootPvc: (ns, n) => s.inf.pvcs.get(n, ns),
    rootPv: (n) => s.inf.pvs.get(n),
    refs: () => s.refs,
    rootPod: (k) => {
      const [ns, n] = k.split("/") as [string, string];
      return s.inf.pods.get(n, ns);
    },
    rootPods: () => s.inf.pods.list(),
    rootObject: (kind, ns, name) => (kind === "configmaps" ? s.inf.configMaps : s.inf.secrets).get(name, ns),
    refOf: (n) => (n ? s.refs.get(n) : undefined),
    leaf: (c) => s.leaves.get(c),
    leaves: () => [...s.leaves.values()],
    leafGone: s.leafGone,
    event: s.event,
    counters: s.counters,
  };
}

/** The queues, paused until this process leads (`leader` false). */
export function makeQueues(o: {
  log: Logger;
  backoff: Backoff;
  podWorkers: number;
  podEnv: PodEnv;
  reconcileCluster: (name: string) => Promise<void>;
  leader: boolean;
}): TreeQueues {
  const { log, backoff, podEnv } = o;
  const counters = podEnv.counters;
  /** When each queued pod key was first added since it last ran (queue wait). */
  const podAddedAt = new Map<string, number>();
  const pods = new WorkQueue({
    name: "pods",
    logger: log,
    workers: o.podWorkers,
    ...backoff,
    onError: (key, e) => {
      if (e instanceof WaitError) log.debug({ key, err: e.message }, "waiting");
    },
    process: async (k) => {
      const t0 = performance.now();
      const added = podAddedAt.get(k);
      podAddedAt.delete(k);
      if (added !== undefined) counters.podQueueWaitMs += t0 - added;
      try {
        await reconcilePod(podEnv, k);
      } finally {
        counters.podReconciles++;
        counters.podReconcileMs += performance.now() - t0;
      }
    },
  });
  const copies = new WorkQueue({
    name: "copies",
    logger: log,
    workers: 2,
    ...backoff,
    process: (k) => reconcileCopy(podEnv, k),
  });
  const volumes = new WorkQueue({
    name: "volumes",
    logger: log,
    workers: 2,
    ...backoff,
    process: (k) => reconcileVolume(podEnv, k),
  });
  const clusters = new WorkQueue({ name: "clusters", logger: log, ...backoff, process: o.reconcileCluster });
  const all = [clusters, pods, copies, volumes];
  if (!o.leader) for (const q of all) q.pause();
  return {
    clusters,
    pods,
    copies,
    volumes,
    all,
    enqueuePod: (k) => {
      if (!podAddedAt.has(k)) podAddedAt.set(k, performance.now());
      pods.add(k);
    },
  };
}
