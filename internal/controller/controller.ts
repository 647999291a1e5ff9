/**
 * kosmos-controller: informers on Clusters/ClusterNodes (host) and Nodes (each member cluster, reached
 * through a kubeconfig in a Secret or inline). Maintains ClusterNodes and Cluster status, and seeds the
 * resulting Topology into a few agents. No polling: every action is triggered by a watch event; errors
 * (API down, 410, 409) are retried with backoff.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
  PatchStrategy,
  setHeaderOptions,
  type V1Node,
} from "@kubernetes/client-node";
import { errorCode, kubeConfigFromYaml } from "../kube/index.ts";
import { type Logger, silentLogger } from "../observability/index.ts";
import { type Topology, validateTopology } from "../topology/index.ts";
import { detectPodCIDRs, detectServiceCIDRs, type IpPoolLike, type PodLike } from "./cidr.ts";
import { type DiscoveryOptions, discoverAgents } from "./discovery.ts";
import { type LeaderElector, startLeaderElection } from "./leader.ts";
import { desiredClusterNodes, toTopology } from "./mapping.ts";
import type { AgentEndpoint, Pusher } from "./push.ts";
import { Seeder } from "./seeder.ts";
import { CLUSTER_LABEL, type ClusterNodeObject, type ClusterObject, GROUP, VERSION } from "./types.ts";

export interface ControllerOptions {
  /** Host cluster: kubeconfig YAML or a loaded KubeConfig. */
  kubeconfig: string | KubeConfig;
  /** Explicit seed agents (e.g. `unix:` sockets in the lab). Empty: discover them (see `discovery`). */
  agents: AgentEndpoint[];
  /**
   * Discover agents from the ClusterNodes when `agents` is empty: `<scheme>://<node IP>:<port>`, up to
   * `perCluster` (default 3) per cluster, gateway candidates first, rotating on failed pushes.
   */
  discovery?: DiscoveryOptions & { perCluster?: number };
  /** Namespace of the Lease and default namespace of kubeconfig Secrets (default kosmos-system). */
  namespace?: string;
  identity?: string;
  /** Leader election through a Lease (default true). */
  leaderElection?: boolean;
  leaseDurationSeconds?: number;
  logger?: Logger;
  pusher?: Pusher;
  /** Backoff bounds for informer restarts and reconcile retries (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface RunningController {
  readonly seeder: Seeder;
  isLeader(): boolean;
  /** The topology currently derived from the informer caches. */
  topology(): Topology;
  /** Resolve once every queued reconcile has run (tests, CLI). */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

interface Member {
  source: string;
  informer: Informer<V1Node> & ObjectCache<V1Node>;
  kc: KubeConfig;
  serviceProbe?: string[];
}

const PLURAL = { clusters: "clusters", clusterNodes: "clusternodes" } as const;

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const log = opts.logger ?? silentLogger();
  const kc = typeof opts.kubeconfig === "string" ? kubeConfigFromYaml(opts.kubeconfig) : opts.kubeconfig;
  const namespace = opts.namespace ?? "kosmos-system";
  const minB = opts.minBackoffMs ?? 200;
  const maxB = opts.maxBackoffMs ?? 30_000;
  const core = kc.makeApiClient(CoreV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const seeder = new Seeder({
    agents: opts.agents,
    pusher: opts.pusher,
    logger: log,
    minBackoffMs: minB,
    maxBackoffMs: maxB,
    perGroup: opts.discovery?.perCluster,
  });
  const discovering = opts.agents.length === 0 && opts.discovery !== undefined;
  let stopped = false;
  let leader = opts.leaderElection === false;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (fn: () => void, ms: number): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) fn();
    }, ms);
    timers.add(t);
  };

  /** Keep an informer running: restart after errors with exponential backoff; 410 relists inside. */
  const keepRunning = <T extends KubernetesObject>(inf: Informer<T>, what: string): void => {
    let failures = 0;
    inf.on("connect", () => {
      failures = 0;
    });
    inf.on("error", (err: unknown) => {
      if (stopped) return;
      failures++;
      const delay = Math.min(maxB, minB * 2 ** (failures - 1));
      log.warn(
        { informer: what, err: (err as Error)?.message ?? String(err), retryInMs: delay },
        "watch failed, restarting",
      );
      later(() => {
        inf.start().catch(() => undefined);
      }, delay);
    });
  };

  const clusterPath = `/apis/${GROUP}/${VERSION}/${PLURAL.clusters}`;
  const clusterNodePath = `/apis/${GROUP}/${VERSION}/${PLURAL.clusterNodes}`;
  const clusters = makeInformer<ClusterObject & KubernetesObject>(
    kc,
    clusterPath,
    () =>
      custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL.clusters }) as never,
  );
  const clusterNodes = makeInformer<ClusterNodeObject & KubernetesObject>(
    kc,
    clusterNodePath,
    () =>
      custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL.clusterNodes,
      }) as never,
  );
  keepRunning(clusters, "clusters");
  keepRunning(clusterNodes, "clusternodes");

  const topology = (): Topology =>
    toTopology(clusters.list() as ClusterObject[], clusterNodes.list() as ClusterNodeObject[]);
  // Never push a topology the agents would refuse (e.g. a globalCIDRsMap key before the cluster's pod
  // CIDRs are detected): keep the last valid one and say why once.
  let lastInvalid: string | undefined;
  let lastCandidates = "";
  const seed = (): void => {
    if (!leader || stopped) return;
    if (discovering) {
      const groups = discoverAgents(clusterNodes.list() as ClusterNodeObject[], opts.discovery!);
      const key = JSON.stringify(groups);
      if (key !== lastCandidates) {
        lastCandidates = key;
        log.info(
          {
            agents: Object.fromEntries(Object.entries(groups).map(([c, eps]) => [c, eps.map((e) => e.url)])),
          },
          "discovered agents",
        );
        seeder.setGroups(groups, opts.discovery!.perCluster ?? 3);
      }
    }
    const t = topology();
    try {
      validateTopology(t);
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastInvalid) log.warn({ err: msg }, "derived topology is not valid yet; not seeding it");
      lastInvalid = msg;
      return;
    }
    lastInvalid = undefined;
    seeder.update(t);
  };

  // ---- work queue: one reconcile per cluster name at a time, deduplicated, retried with backoff ----
  const queued = new Set<string>();
  const failures = new Map<string, number>();
  let running = false;
  let idleWaiters: (() => void)[] = [];
  const schedule = (name: string): void => {
    if (stopped) return;
    queued.add(name);
    if (!running) void drain();
  };
  const drain = async (): Promise<void> => {
    running = true;
    while (queued.size > 0 && !stopped) {
      const name = queued.values().next().value as string;
      queued.delete(name);
      if (!leader) continue;
      try {
        await reconcile(name);
        failures.delete(name);
      } catch (e) {
        const n = (failures.get(name) ?? 0) + 1;
        failures.set(name, n);
        const delay = Math.min(maxB, minB * 2 ** (n - 1));
        log.warn(
          { cluster: name, err: (e as Error).message, code: errorCode(e), retryInMs: delay },
          "reconcile failed",
        );
        later(() => schedule(name), delay);
      }
    }
    running = false;
    for (const w of idleWaiters.splice(0)) w();
  };

  // ---- member clusters ----
  const members = new Map<string, Member>();
  const memberKubeConfig = async (
    c: ClusterObject,
  ): Promise<{ source: string; kc: KubeConfig } | undefined> => {
    let yaml: string | undefined;
    const ref = c.spec.kubeconfigSecretRef;
    if (ref) {
      const secret = await core.readNamespacedSecret({
        name: ref.name,
        namespace: ref.namespace ?? namespace,
      });
      const data = secret.data?.[ref.key ?? "kubeconfig"];
      if (data) yaml = Buffer.from(data, "base64").toString("utf8");
    } else if (c.spec.kubeconfig) {
      yaml = Buffer.from(c.spec.kubeconfig, "base64").toString("utf8");
    }
    if (!yaml) return undefined;
    return { source: yaml, kc: kubeConfigFromYaml(yaml) };
  };
  const stopMember = async (name: string): Promise<void> => {
    const m = members.get(name);
    members.delete(name);
    if (m) await m.informer.stop();
  };
  const ensureMember = async (c: ClusterObject): Promise<Member | undefined> => {
    const got = await memberKubeConfig(c);
    const name = c.metadata.name;
    if (!got) {
      await stopMember(name);
      return undefined;
    }
    const existing = members.get(name);
    if (existing && existing.source === got.source) return existing;
    await stopMember(name);
    const mcore = got.kc.makeApiClient(CoreV1Api);
    const informer = makeInformer<V1Node>(got.kc, "/api/v1/nodes", () => mcore.listNode());
    keepRunning(informer, `nodes@${name}`);
    informer.on("add", () => schedule(name));
    informer.on("update", () => schedule(name));
    informer.on("delete", () => schedule(name));
    const m: Member = { source: got.source, informer, kc: got.kc };
    members.set(name, m);
    await informer.start().catch(() => undefined); // errors go to keepRunning
    return m;
  };

  const detect = async (
    c: ClusterObject,
    m: Member,
  ): Promise<{ podCIDRs: string[]; serviceCIDRs: string[] }> => {
    const o = c.spec.clusterLinkOptions ?? {};
    const mcore = m.kc.makeApiClient(CoreV1Api);
    const mcustom = m.kc.makeApiClient(CustomObjectsApi);
    const pods = async (component: string): Promise<PodLike[]> => {
      try {
        return (
          await mcore.listNamespacedPod({ namespace: "kube-system", labelSelector: `component=${component}` })
        ).items as PodLike[];
      } catch {
        return [];
      }
    };
    let ipPools: IpPoolLike[] = [];
    if ((o.cni ?? "calico") === "calico") {
      try {
        const r = (await mcustom.listClusterCustomObject({
          group: "crd.projectcalico.org",
          version: "v1",
          plural: "ippools",
        })) as { items?: IpPoolLike[] };
        ipPools = r.items ?? [];
      } catch (e) {
        if (errorCode(e) !== 404) throw e;
      }
    }
    const pod = detectPodCIDRs({
      override: o.clusterpodCIDRs,
      ipPools,
      controllerManagerPods: await pods("kube-controller-manager"),
      nodes: [...m.informer.list()],
    });
    const apiserverPods = o.useexternalapiserver ? [] : await pods("kube-apiserver");
    let svc = detectServiceCIDRs({ apiserverPods });
    if (svc.cidrs.length === 0) {
      if (!m.serviceProbe) m.serviceProbe = await probeServiceCidr(mcore);
      svc = detectServiceCIDRs({ serviceErrorMessage: m.serviceProbe.join(" ") });
      if (m.serviceProbe.length > 0) svc = { cidrs: m.serviceProbe, source: "service-api" };
    }
    log.debug({ cluster: c.metadata.name, pod: pod.source, svc: svc.source }, "CIDRs detected");
    return { podCIDRs: pod.cidrs, serviceCIDRs: svc.cidrs };
  };

  const reconcile = async (name: string): Promise<void> => {
    const c = clusters.get(name) as ClusterObject | undefined;
    const owned = (clusterNodes.list() as ClusterNodeObject[]).filter(
      (n) => n.metadata.labels?.[CLUSTER_LABEL] === name,
    );
    if (!c) {
      await stopMember(name);
      for (const n of owned) await deleteClusterNode(n.metadata.name);
      return;
    }
    const m = await ensureMember(c);
    if (!m) {
      await patchStatus(
        c,
        { podCIDRs: [], serviceCIDRs: [] },
        0,
        "False",
        "NoKubeconfig",
        "no kubeconfig (spec.kubeconfigSecretRef or spec.kubeconfig)",
      );
      return;
    }
    const desired = desiredClusterNodes(c, [...m.informer.list()]);
    const want = new Set(desired.map((d) => d.metadata.name));
    for (const d of desired) {
      const cur = clusterNodes.get(d.metadata.name) as ClusterNodeObject | undefined;
      // Annotations: the ones set by others are kept; the fingerprint follows the member Node's.
      const annotations = { ...(cur?.metadata.annotations ?? {}), ...(d.metadata.annotations ?? {}) };
      const body = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "ClusterNode",
        metadata: {
          name: d.metadata.name,
          labels: { [CLUSTER_LABEL]: name },
          ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
        },
        spec: d.spec,
      };
      if (!cur) {
        try {
          await custom.createClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: PLURAL.clusterNodes,
            body,
          });
        } catch (e) {
          if (errorCode(e) !== 409) throw e;
          schedule(name); // exists but not yet in our cache: converge on the next pass
        }
      } else if (
        JSON.stringify(sortKeys(cur.spec)) !== JSON.stringify(sortKeys(d.spec)) ||
        cur.metadata.labels?.[CLUSTER_LABEL] !== name ||
        JSON.stringify(sortKeys(cur.metadata.annotations ?? {})) !== JSON.stringify(sortKeys(annotations))
      ) {
        await custom.replaceClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: PLURAL.clusterNodes,
          name: d.metadata.name,
          body: { ...body, metadata: { ...body.metadata, resourceVersion: cur.metadata.resourceVersion } },
        });
      }
    }
    for (const n of owned) if (!want.has(n.metadata.name)) await deleteClusterNode(n.metadata.name);
    const cidrs = await detect(c, m);
    await patchStatus(c, cidrs, desired.length, "True", "Synced", `${desired.length} nodes`);
  };

  const deleteClusterNode = async (n: string): Promise<void> => {
    try {
      await custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL.clusterNodes,
        name: n,
      });
    } catch (e) {
      if (errorCode(e) !== 404) throw e;
    }
  };

  const patchStatus = async (
    c: ClusterObject,
    cidrs: { podCIDRs: string[]; serviceCIDRs: string[] },
    nodeCount: number,
    ready: "True" | "False",
    reason: string,
    message: string,
  ): Promise<void> => {
    const prev = c.status ?? {};
    const prevReady = prev.conditions?.find((x) => x.type === "Ready");
    const status = {
      clusterLinkStatus: { podCIDRs: cidrs.podCIDRs, serviceCIDRs: cidrs.serviceCIDRs },
      observedGeneration: c.metadata.generation ?? 1,
      nodeCount,
      conditions: [
        {
          type: "Ready",
          status: ready,
          reason,
          message,
          lastTransitionTime:
            prevReady?.status === ready && prevReady.lastTransitionTime
              ? prevReady.lastTransitionTime
              : new Date().toISOString().replace(/\.\d+Z$/, "Z"),
        },
      ],
    };
    if (JSON.stringify(sortKeys(prev)) === JSON.stringify(sortKeys(status))) return;
    await custom.patchClusterCustomObjectStatus(
      { group: GROUP, version: VERSION, plural: PLURAL.clusters, name: c.metadata.name, body: { status } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  };

  // ---- host informer wiring ----
  clusters.on("add", (c) => {
    schedule(c.metadata!.name!);
    seed();
  });
  clusters.on("update", (c) => {
    schedule(c.metadata!.name!);
    seed();
  });
  clusters.on("delete", (c) => {
    schedule(c.metadata!.name!);
    seed();
  });
  clusterNodes.on("add", seed);
  clusterNodes.on("update", seed);
  clusterNodes.on("delete", (n) => {
    seed();
    const owner = (n as ClusterNodeObject).metadata.labels?.[CLUSTER_LABEL];
    if (owner) schedule(owner); // recreate a ClusterNode deleted by hand
  });

  const onLeading = (): void => {
    leader = true;
    for (const c of clusters.list()) schedule(c.metadata!.name!);
    seed();
  };
  let elector: LeaderElector | undefined;
  await clusters.start().catch(() => undefined);
  await clusterNodes.start().catch(() => undefined);
  if (opts.leaderElection === false) onLeading();
  else {
    elector = startLeaderElection({
      kubeConfig: kc,
      namespace,
      name: "kosmos-controller",
      identity: opts.identity ?? `${process.env.HOSTNAME ?? "controller"}-${crypto.randomUUID().slice(0, 8)}`,
      leaseDurationSeconds: opts.leaseDurationSeconds,
      logger: log,
      onStartedLeading: onLeading,
      onStoppedLeading: () => {
        leader = false;
      },
    });
  }

  return {
    seeder,
    isLeader: () => leader,
    topology,
    idle: () =>
      !running && queued.size === 0 ? Promise.resolve() : new Promise<void>((r) => idleWaiters.push(r)),
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      seeder.stop();
      await elector?.stop();
      await clusters.stop();
      await clusterNodes.stop();
      for (const name of [...members.keys()]) await stopMember(name);
      for (const w of idleWaiters.splice(0)) w();
      idleWaiters = [];
    },
  };
}

/** Create a Service with an out-of-range clusterIP and read the valid range from the error. */
async function probeServiceCidr(core: CoreV1Api): Promise<string[]> {
  try {
    await core.createNamespacedService({
      namespace: "default",
      body: {
        metadata: { name: "kosmos-service-cidr-probe" },
        spec: { clusterIP: "0.0.0.1", ports: [{ port: 80 }] },
      },
    });
    await core
      .deleteNamespacedService({ name: "kosmos-service-cidr-probe", namespace: "default" })
      .catch(() => undefined);
    return [];
  } catch (e) {
    const body = (e as { body?: unknown }).body;
    const text = typeof body === "string" ? body : JSON.stringify(body ?? "");
    const m = /The range of valid IPs is ([0-9a-fA-F.:/]+)(?: and ([0-9a-fA-F.:/]+))?/.exec(text);
    return m ? [m[1]!, ...(m[2] ? [m[2]] : [])] : [];
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as Record<string, unknown>)
        .sort()
        .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}
