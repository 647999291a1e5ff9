/**
 * kosmos-clustertree: leaf clusters as virtual nodes of the root cluster. Informers on the root's
 * Clusters, virtual Nodes, Pods, ConfigMaps and Secrets, and per leaf on its Nodes, Pods and copies;
 * three work queues — clusters (connection + virtual nodes), pods (root ↔ leaf), copies (ConfigMaps /
 * Secrets in leaves) — each with per-key exponential backoff. No polling: the only timer is the node
 * heartbeat (a Lease per virtual node every 10 s while the leaf's /version answers), which is what a
 * kubelet does. With leader election on, only the holder of the `kosmos-clustertree` Lease works.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import { type ClusterObject, canonical } from "../controller/index.ts";
import {
  Informer,
  isNotFound,
  KubeClient,
  kubeConfigFromYaml,
  type LeaderElector,
  objectKey,
  startLeaderElection,
  WorkQueue,
} from "../kube/index.ts";
import { type Logger, silentLogger } from "../observability/index.ts";
import type { CopyKind } from "./deps.ts";
import { Leaf, leafClient, leafKubeconfig } from "./leaf.ts";
import { type DesiredNode, type NodePlan, planNodes, treeEnabled } from "./model.ts";
import { applyNode, deleteNode, type NodeEnv, ownedBy, renewLease } from "./nodes.ts";
import {
  type Counters,
  carried,
  newCounters,
  type PodEnv,
  reconcileCopy,
  reconcilePod,
  WaitError,
} from "./pods.ts";
import {
  CONDITION,
  type DataObject,
  FINALIZER,
  NODE_LABEL,
  type NodeObject,
  POD_LABEL,
  type PodObject,
  ROOT_ROLE_ANNOTATION,
  ROOT_UID_ANNOTATION,
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
  /** Node Lease renewal period (default 10 s, as upstream). */
  heartbeatMs?: number;
  /** Parallel pod reconciles (default 32: each mostly waits on an API server). */
  podWorkers?: number;
  logger?: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

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
  leafOfPod(ns: string, name: string): { cluster: string; client: KubeClient } | undefined;
  counters: Counters;
  queueLengths(): Record<string, number>;
  idle(): Promise<void>;
  stop(): Promise<void>;
}

export async function startClusterTree(o: ClusterTreeOptions): Promise<RunningClusterTree> {
  const log = o.logger ?? silentLogger();
  const kc = typeof o.kubeconfig === "string" ? kubeConfigFromYaml(o.kubeconfig) : o.kubeconfig;
  const root = new KubeClient(kc);
  const namespace = o.namespace ?? "kosmos-system";
  const backoff = { minBackoffMs: o.minBackoffMs ?? 200, maxBackoffMs: o.maxBackoffMs ?? 30_000 };
  const common = { client: root, logger: log, ...backoff };
  const clusters = new Informer<ClusterObject>({ ...common, path: CLUSTERS_PATH, name: "clusters" });
  const vnodes = new Informer<NodeObject>({
    ...common,
    path: "/api/v1/nodes",
    labelSelector: `${NODE_LABEL}=true`,
    name: "virtual-nodes",
  });
  const rootPods = new Informer<PodObject>({ ...common, path: "/api/v1/pods", name: "pods" });
  const rootCMs = new Informer<DataObject>({ ...common, path: "/api/v1/configmaps", name: "configmaps" });
  const rootSecrets = new Informer<DataObject>({ ...common, path: "/api/v1/secrets", name: "secrets" });
  const rootInformers = [clusters, vnodes, rootPods, rootCMs, rootSecrets] as Informer<{
    metadata: { name: string };
  }>[];

  const leaves = new Map<string, Leaf>();
  const plans = new Map<string, NodePlan>();
  const refs = new Map<string, VirtualNodeRef>();
  const counters = newCounters();
  /** When each queued pod key was first added since it last ran (queue wait). */
  const podAddedAt = new Map<string, number>();
  const leafGone = new Map<string, string>();
  const eventsSent = new Set<string>();
  let leader = o.leaderElection === false;

  const event = (p: PodObject, type: "Normal" | "Warning", reason: string, message: string): void => {
    const k = `${p.metadata.uid}/${reason}/${message}`;
    if (eventsSent.has(k)) return;
    eventsSent.add(k);
    if (eventsSent.size > 10_000) eventsSent.clear();
    const t = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    log.info({ pod: objectKey(p), reason, message }, "event");
    void root
      .create(`/api/v1/namespaces/${p.metadata.namespace}/events`, {
        apiVersion: "v1",
        kind: "Event",
        metadata: { generateName: `${p.metadata.name}.`, namespace: p.metadata.namespace },
        involvedObject: {
          apiVersion: "v1",
          kind: "Pod",
          name: p.metadata.name,
          namespace: p.metadata.namespace,
          uid: p.metadata.uid,
        },
        reason,
        message,
        type,
        source: { component: "kosmos-clustertree" },
        firstTimestamp: t,
        lastTimestamp: t,
        count: 1,
      })
      .catch((e) => log.warn({ err: (e as Error).message }, "could not record an event"));
  };

  const podEnv: PodEnv = {
    root,
    rootPod: (k) => {
      const [ns, n] = k.split("/") as [string, string];
      return rootPods.get(n, ns);
    },
    rootPods: () => rootPods.list(),
    rootObject: (kind, ns, name) => (kind === "configmaps" ? rootCMs : rootSecrets).get(name, ns),
    refOf: (n) => (n ? refs.get(n) : undefined),
    leaf: (c) => leaves.get(c),
    leaves: () => [...leaves.values()],
    leafGone,
    event,
    counters,
  };
  const quietWait = (key: string, e: unknown): void => {
    if (e instanceof WaitError) log.debug({ key, err: e.message }, "waiting");
  };
  const pods = new WorkQueue({
    name: "pods",
    logger: log,
    workers: o.podWorkers ?? 32,
    ...backoff,
    onError: quietWait,
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
  const enqueuePod = (k: string): void => {
    if (!podAddedAt.has(k)) podAddedAt.set(k, performance.now());
    pods.add(k);
  };
  const copies = new WorkQueue({
    name: "copies",
    logger: log,
    workers: 2,
    ...backoff,
    process: (k) => reconcileCopy(podEnv, k),
  });
  const clusterQ = new WorkQueue({
    name: "clusters",
    logger: log,
    ...backoff,
    process: (n) => reconcileCluster(n),
  });
  const queues = [clusterQ, pods, copies];
  if (!leader) for (const q of queues) q.pause();

  const nodeEnv = (leaf: Leaf): NodeEnv => ({
    root,
    rootNode: (n) => vnodes.get(n),
    address: o.nodeAddress ?? "127.0.0.1",
    port: o.kubeletPort ?? 10250,
    kubeletVersion: leaf.kubeletVersion || "v0.0.0-kosmos",
  });

  const enqueuePodsOf = (cluster: string, ns?: string, onlyWithoutLeafPod = false): void => {
    const leaf = leaves.get(cluster);
    for (const p of rootPods.list()) {
      if (ns && p.metadata.namespace !== ns) continue;
      if (refs.get(p.spec.nodeName ?? "")?.cluster !== cluster) continue;
      if (onlyWithoutLeafPod && leaf?.pods.get(p.metadata.name, p.metadata.namespace)) continue;
      if (!carried(p)) continue;
      enqueuePod(objectKey(p));
    }
  };

  // ---- leaves -------------------------------------------------------------------------------------
  const onLeafPod = (cluster: string, p: PodObject, old: PodObject | undefined, deleted: boolean): void => {
    const key = objectKey(p);
    if (p.metadata.labels?.[POD_LABEL] === "true") {
      if (deleted) {
        const r = rootPods.get(p.metadata.name, p.metadata.namespace);
        if (
          r &&
          !r.metadata.deletionTimestamp &&
          r.metadata.uid === p.metadata.annotations?.[ROOT_UID_ANNOTATION]
        )
          leafGone.set(key, r.metadata.uid!);
        const leaf = leaves.get(cluster);
        for (const [kind, inf] of [
          ["configmaps", leaf?.configMaps],
          ["secrets", leaf?.secrets],
        ] as const)
          for (const c of inf?.list() ?? [])
            if (c.metadata.namespace === p.metadata.namespace)
              copies.add(`${cluster}/${kind}/${c.metadata.namespace}/${c.metadata.name}`);
      }
      enqueuePod(key);
      return;
    }
    // A pod Kosmos did not make changes the leaf's free capacity when it runs, moves or goes.
    const shape = (x: PodObject | undefined): string => JSON.stringify([x?.spec?.nodeName, x?.status?.phase]);
    if (deleted || !old || shape(p) !== shape(old)) clusterQ.addAfter(cluster, 500);
  };
  const handlers = {
    onNodes: (c: string) => clusterQ.add(c),
    onPod: onLeafPod,
    onCopy: (c: string, kind: CopyKind, obj: DataObject) =>
      copies.add(`${c}/${kind}/${obj.metadata.namespace}/${obj.metadata.name}`),
    onHealth: (c: string) => clusterQ.add(c),
  };

  async function probe(leaf: Leaf): Promise<boolean> {
    try {
      const v = await leaf.client.request<{ gitVersion?: string }>("GET", "/version", { timeoutMs: 5_000 });
      leaf.kubeletVersion = v.gitVersion ?? leaf.kubeletVersion;
      leaf.lastProbeError = undefined;
      return true;
    } catch (e) {
      leaf.lastProbeError = `the leaf API server does not answer: ${(e as Error).message}`;
      return false;
    }
  }

  async function heartbeat(leaf: Leaf): Promise<void> {
    const was = leaf.answering;
    leaf.answering = await probe(leaf);
    if (was !== leaf.answering) {
      log.info(
        { cluster: leaf.name, answering: leaf.answering, err: leaf.lastProbeError },
        "leaf heartbeat changed",
      );
      clusterQ.add(leaf.name);
    }
    if (!leaf.answering || !leader) return; // no renewal: the root's node-lifecycle controller takes over
    for (const d of plans.get(leaf.name)?.nodes ?? []) {
      const n = vnodes.get(d.name);
      if (n && ownedBy(n) === leaf.name)
        await renewLease(root, n).catch((e) =>
          log.warn({ node: d.name, err: (e as Error).message }, "lease renewal failed"),
        );
    }
  }

  let beating = false;
  const beat = setInterval(() => {
    if (beating) return;
    beating = true;
    void Promise.all([...leaves.values()].map(heartbeat)).finally(() => {
      beating = false;
    });
  }, o.heartbeatMs ?? 10_000);

  async function stopLeaf(name: string): Promise<void> {
    const l = leaves.get(name);
    leaves.delete(name);
    await l?.stop();
  }

  async function writeCondition(
    c: ClusterObject,
    status: "True" | "False",
    reason: string,
    message: string,
  ): Promise<void> {
    const prev = c.status?.conditions ?? [];
    const old = prev.find((x) => x.type === CONDITION);
    if (old?.status === status && old.reason === reason && old.message === message) return;
    const cond = {
      type: CONDITION,
      status,
      reason,
      message,
      lastTransitionTime:
        old?.status === status && old.lastTransitionTime
          ? old.lastTransitionTime
          : new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
    const conditions = [...prev.filter((x) => x.type !== CONDITION), cond];
    await root.patch(
      `${CLUSTERS_PATH}/${encodeURIComponent(c.metadata.name)}`,
      { metadata: { resourceVersion: c.metadata.resourceVersion }, status: { conditions } },
      "merge",
    );
  }

  async function setFinalizer(c: ClusterObject, on: boolean): Promise<void> {
    const has = c.metadata.finalizers?.includes(FINALIZER) ?? false;
    if (has === on) return;
    const finalizers = on
      ? [...(c.metadata.finalizers ?? []), FINALIZER]
      : (c.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
    await root.patch(
      `${CLUSTERS_PATH}/${encodeURIComponent(c.metadata.name)}`,
      { metadata: { finalizers, resourceVersion: c.metadata.resourceVersion } },
      "merge",
    );
  }

  async function removeNodes(cluster: string, keep: Set<string>): Promise<void> {
    for (const n of vnodes.list()) {
      if (ownedBy(n) !== cluster || keep.has(n.metadata.name)) continue;
      await deleteNode({ ...nodeEnv(leaves.get(cluster) ?? ({} as Leaf)) }, n.metadata.name);
      log.info({ cluster, node: n.metadata.name }, "virtual node removed");
    }
    for (const [n, r] of refs) if (r.cluster === cluster && !keep.has(n)) refs.delete(n);
  }

  async function teardown(name: string): Promise<void> {
    await stopLeaf(name);
    plans.delete(name);
    await removeNodes(name, new Set());
  }

  async function reconcileCluster(name: string): Promise<void> {
    const c = clusters.get(name);
    if (!c || c.metadata.annotations?.[ROOT_ROLE_ANNOTATION] === "root") return teardown(name);
    if (c.metadata.deletionTimestamp || !treeEnabled(c)) {
      await teardown(name);
      try {
        await setFinalizer(c, false);
      } catch (e) {
        if (!isNotFound(e)) throw e;
      }
      return;
    }
    await setFinalizer(c, true);
    const got = await leafKubeconfig(root, c, namespace);
    if (!("yaml" in got)) {
      await stopLeaf(name);
      await writeCondition(c, "False", got.reason, got.message);
      clusterQ.addAfter(name, 30_000); // a Secret that appears later is not watched: look again
      return;
    }
    let leaf = leaves.get(name);
    if (!leaf || leaf.source !== got.yaml) {
      await stopLeaf(name);
      const client = leafClient(got.yaml);
      if (!(client instanceof KubeClient)) {
        await writeCondition(c, "False", client.reason, client.message);
        return;
      }
      leaf = new Leaf(name, got.yaml, client, handlers, { logger: log, ...backoff });
      leaves.set(name, leaf);
      leaf.start();
      log.info({ cluster: name, server: client.server.origin }, "connecting to leaf");
      void heartbeat(leaf);
    }
    if (!leaf.synced()) {
      await writeCondition(
        c,
        "False",
        "LeafUnreachable",
        `cannot list the leaf: ${leaf.trouble() ?? "connecting"}`,
      );
      return; // its informers' health change brings us back
    }
    const plan = planNodes({ cluster: c, leafNodes: leaf.nodes.list(), podsByNode: (n) => leaf.podsOn(n) });
    const first = !plans.has(name);
    const problems = [...plan.problems];
    const applied: DesiredNode[] = [];
    for (const d of plan.nodes) {
      const other = refs.get(d.name);
      if (other && other.cluster !== name) {
        problems.push(`root node ${d.name} belongs to Cluster ${other.cluster}`);
        continue;
      }
      const p = await applyNode(nodeEnv(leaf), d, leaf.answering);
      if (p) problems.push(p);
      else {
        applied.push(d);
        refs.set(d.name, d.ref);
      }
    }
    plans.set(name, { nodes: applied, problems });
    await removeNodes(name, new Set(applied.map((d) => d.name)));
    if (first) {
      enqueuePodsOf(name);
      for (const [kind, inf] of [
        ["configmaps", leaf.configMaps],
        ["secrets", leaf.secrets],
      ] as const)
        for (const x of inf.list()) copies.add(`${name}/${kind}/${x.metadata.namespace}/${x.metadata.name}`);
      // leaf pods whose root pod is gone (deleted while no clustertree ran)
      for (const lp of leaf.pods.list())
        if (
          lp.metadata.labels?.[POD_LABEL] === "true" &&
          !rootPods.get(lp.metadata.name, lp.metadata.namespace)
        )
          enqueuePod(objectKey(lp));
    }
    if (problems.length > 0) await writeCondition(c, "False", "LeafModelProblem", problems.join("; "));
    else if (!leaf.answering)
      await writeCondition(
        c,
        "False",
        "LeafUnreachable",
        leaf.lastProbeError ?? "the leaf API server does not answer",
      );
    else
      await writeCondition(
        c,
        "True",
        "LeafReady",
        `${applied.length} virtual node(s): ${applied.map((d) => d.name).join(", ")}`,
      );
  }

  // ---- root informers -------------------------------------------------------------------------------
  clusters
    .on("add", (c) => clusterQ.add(c.metadata.name))
    .on("update", (c, old) => {
      // status writes (ours and the ClusterLink controller's) change nothing here
      if (
        !old ||
        canonical([c.spec, c.metadata.deletionTimestamp, c.metadata.annotations]) !==
          canonical([old.spec, old.metadata.deletionTimestamp, old.metadata.annotations])
      )
        clusterQ.add(c.metadata.name);
    })
    .on("delete", (c) => clusterQ.add(c.metadata.name));
  vnodes.on("delete", (n) => {
    const c = ownedBy(n);
    if (c) clusterQ.add(c);
  });
  const onRootPod = (p: PodObject): void => {
    if (refs.has(p.spec.nodeName ?? "") && carried(p)) enqueuePod(objectKey(p));
  };
  rootPods
    .on("add", onRootPod)
    .on("update", onRootPod)
    .on("delete", (p) => {
      if (
        refs.has(p.spec.nodeName ?? "") ||
        [...leaves.values()].some((l) => l.pods.get(p.metadata.name, p.metadata.namespace))
      )
        enqueuePod(objectKey(p));
    });
  const onRootObject = (kind: CopyKind) => (obj: DataObject) => {
    const ns = obj.metadata.namespace!;
    for (const [c, l] of leaves) {
      const leafName =
        kind === "configmaps" && obj.metadata.name === "kube-root-ca.crt"
          ? "master-root-ca.crt"
          : obj.metadata.name;
      if ((kind === "configmaps" ? l.configMaps : l.secrets).get(leafName, ns))
        copies.add(`${c}/${kind}/${ns}/${leafName}`);
      enqueuePodsOf(c, ns, true); // pods waiting for this object
    }
  };
  for (const [kind, inf] of [
    ["configmaps", rootCMs],
    ["secrets", rootSecrets],
  ] as const)
    inf.on("add", onRootObject(kind)).on("update", onRootObject(kind)).on("delete", onRootObject(kind));
  for (const i of rootInformers) i.start();

  let elector: LeaderElector | undefined;
  const onLeading = (): void => {
    if (elector && !elector.isLeader()) return;
    leader = true;
    for (const c of clusters.list()) clusterQ.add(c.metadata.name);
    // virtual nodes of Clusters deleted while no clustertree ran
    for (const n of vnodes.list()) {
      const c = ownedBy(n);
      if (c && !clusters.get(c)) clusterQ.add(c);
    }
    for (const q of queues) q.resume();
  };
  const synced = (): Promise<void> =>
    Promise.all(rootInformers.map((i) => i.waitSynced())).then(() => undefined);
  if (o.leaderElection === false) void synced().then(onLeading);
  else {
    elector = startLeaderElection({
      client: root,
      namespace,
      name: "kosmos-clustertree",
      identity: o.identity ?? `${process.env.HOSTNAME ?? "clustertree"}-${crypto.randomUUID().slice(0, 8)}`,
      leaseDurationSeconds: o.leaseDurationSeconds,
      renewDeadlineMs: o.renewDeadlineMs,
      retryPeriodMs: o.retryPeriodMs,
      logger: log,
      onStartedLeading: () => void synced().then(onLeading),
      onStoppedLeading: () => {
        leader = false;
        for (const q of queues) q.pause();
      },
    });
  }

  return {
    isLeader: () => leader,
    ready: () => {
      const notSynced = rootInformers.find((i) => !i.hasSynced());
      if (notSynced)
        return {
          ready: false,
          reason: `informer ${notSynced.o.name} not synced: ${notSynced.lastError ?? "listing"}`,
        };
      const failing = rootInformers.find((i) => i.health() === "failing");
      if (failing) return { ready: false, reason: `cannot watch ${failing.o.name}: ${failing.lastError}` };
      if (elector && !elector.healthy())
        return { ready: false, reason: "the Lease cannot be read or written" };
      return { ready: true, reason: leader ? "leader" : `standby (leader: ${elector?.holder() ?? "?"})` };
    },
    plans: () => plans,
    leaves: () =>
      [...leaves.values()].map((l) => ({
        cluster: l.name,
        server: l.client.server.origin,
        synced: l.synced(),
        answering: l.answering,
        ...(l.trouble() ? { trouble: l.trouble() } : {}),
        nodes: (plans.get(l.name)?.nodes ?? []).map((d) => d.name),
      })),
    leafOfPod: (ns, name) => {
      const p = rootPods.get(name, ns);
      const ref = p ? refs.get(p.spec.nodeName ?? "") : undefined;
      const l = ref ? leaves.get(ref.cluster) : undefined;
      return l ? { cluster: l.name, client: l.client } : undefined;
    },
    counters,
    queueLengths: () => ({ clusters: clusterQ.length, pods: pods.length, copies: copies.length }),
    idle: async () => {
      for (const q of queues) await q.idle();
    },
    async stop() {
      clearInterval(beat);
      for (const q of queues) q.stop();
      await elector?.stop();
      for (const i of rootInformers) await i.stop();
      for (const n of [...leaves.keys()]) await stopLeaf(n);
      root.close();
    },
  };
}
