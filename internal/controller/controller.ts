/**
 * kosmos-controller: informers on Clusters/ClusterNodes (host) and Nodes (each member cluster, reached
 * through a kubeconfig in a Secret or inline). One work queue reconciles Clusters (reconcile.ts); the
 * topology derived from the caches is seeded into a few agents (Seeder). No polling: every action is
 * triggered by a watch event; errors (API down, 410, 409) are retried with backoff. With leader
 * election on, only the holder of the `kosmos-controller` Lease reconciles and seeds.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  Informer,
  KubeClient,
  kubeConfigFromYaml,
  type LeaderElector,
  startLeaderElection,
  WorkQueue,
} from "../kube/index.ts";
import { type Logger, silentLogger } from "../observability/index.ts";
import { type Topology, validateTopology } from "../topology/index.ts";
import { type DiscoveryOptions, discoverAgents } from "./discovery.ts";
import { toTopology } from "./mapping.ts";
import { Members } from "./members.ts";
import type { AgentEndpoint, Pusher } from "./push.ts";
import { CLUSTER_NODES_PATH, CLUSTERS_PATH, reconcileCluster } from "./reconcile.ts";
import { Seeder } from "./seeder.ts";
import { type ClusterNodeObject, type ClusterObject, clusterOf } from "./types.ts";

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
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  logger?: Logger;
  pusher?: Pusher;
  /** Backoff bounds for watch restarts and reconcile retries (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * More of the topology from elsewhere (the MCS controller's service imports), merged into every
   * seeded topology; call `reseed()` when it changed.
   */
  extraTopology?: () => Pick<Topology, "serviceImports" | "serviceEndpoints">;
  /** Told when this replica starts or stops leading (the MCS controller runs only on the leader). */
  onLeadership?: (leading: boolean) => void;
}

/** One informer's state: synced, and how often it had to list again (410 Gone after an outage). */
export interface WatchStatus {
  name: string;
  synced: boolean;
  relists: number;
  expired: number;
  /** Watches resumed after `idleTimeoutMs` of silence (internal/kube/informer.ts). */
  stalls: number;
  failures: number;
  lastError?: string;
}

type WatchedInformer = Pick<Informer, "o" | "hasSynced" | "relists" | "expired" | "stalls" | "failures" | "lastError">;

export interface RunningController {
  readonly seeder: Seeder;
  isLeader(): boolean;
  /** Able to do its job: caches synced and (with leader election) the Lease loop talking to the API. */
  ready(): { ready: boolean; reason: string };
  /** The topology currently derived from the informer caches. */
  topology(): Topology;
  /** Seed again (after `extraTopology` changed). */
  reseed(): void;
  /** Resolve once every queued reconcile has run (tests, CLI). */
  idle(): Promise<void>;
  /** Its informers (Clusters, ClusterNodes, then each watched member's Nodes), as they are now. */
  watches(): WatchStatus[];
  stop(): Promise<void>;
}

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const log = opts.logger ?? silentLogger();
  const kc = typeof opts.kubeconfig === "string" ? kubeConfigFromYaml(opts.kubeconfig) : opts.kubeconfig;
  const client = new KubeClient(kc);
  const namespace = opts.namespace ?? "kosmos-system";
  const backoff = { minBackoffMs: opts.minBackoffMs ?? 200, maxBackoffMs: opts.maxBackoffMs ?? 30_000 };
  const seeder = new Seeder({
    agents: opts.agents,
    pusher: opts.pusher,
    logger: log,
    ...backoff,
    perGroup: opts.discovery?.perCluster,
  });
  const discovering = opts.agents.length === 0 && opts.discovery !== undefined;
  let leader = opts.leaderElection === false;

  const clusters = new Informer<ClusterObject>({
    client,
    path: CLUSTERS_PATH,
    name: "clusters",
    logger: log,
    ...backoff,
  });
  const clusterNodes = new Informer<ClusterNodeObject>({
    client,
    path: CLUSTER_NODES_PATH,
    name: "clusternodes",
    logger: log,
    ...backoff,
  });
  const queue = new WorkQueue({
    name: "clusters",
    logger: log,
    ...backoff,
    process: async (name) => {
      const outcome = await reconcileCluster(
        {
          client,
          logger: log,
          cluster: (n) => clusters.get(n),
          clusterNodes: () => clusterNodes.list(),
          ensureMember: (c) => members.ensure(c),
          stopMember: (n) => members.stop(n),
          requeueAfter: (n, ms) => queue.addAfter(n, ms),
        },
        name,
      );
      log.debug({ cluster: name, outcome }, "reconciled");
    },
  });
  if (!leader) queue.pause();
  const members = new Members(client, { namespace, logger: log, onNodes: (n) => queue.add(n), ...backoff });

  const seed = makeSeeder({ log, seeder, discovering, opts, clusters, clusterNodes, isLeader: () => leader });
  wireInformers(clusters, clusterNodes, queue, seed);
  clusters.start();
  clusterNodes.start();

  let elector: LeaderElector | undefined;
  const onLeading = (): void => {
    if (elector && !elector.isLeader()) return; // lost it again while the caches synced
    leader = true;
    for (const c of clusters.list()) queue.add(c.metadata.name);
    // An orphan ClusterNode (its Cluster deleted while no controller ran) is reconciled away too.
    for (const n of clusterNodes.list()) {
      const owner = clusterOf(n);
      if (owner && !clusters.get(owner)) queue.add(owner);
    }
    queue.resume();
    seed();
    opts.onLeadership?.(true);
  };
  if (opts.leaderElection === false) onLeading();
  else {
    elector = startControllerElection(client, namespace, opts, log, {
      onStartedLeading: () =>
        void clusters
          .waitSynced()
          .then(() => clusterNodes.waitSynced())
          .then(onLeading),
      onStoppedLeading: () => {
        leader = false;
        queue.pause();
        opts.onLeadership?.(false);
      },
    });
  }

  return {
    seeder,
    isLeader: () => leader,
    ready: () => readiness(clusters, clusterNodes, elector, leader),
    topology: () => ({ ...toTopology(clusters.list(), clusterNodes.list()), ...opts.extraTopology?.() }),
    reseed: () => seed(),
    idle: () => queue.idle(),
    watches: () =>
      [clusters, clusterNodes, ...members.names().flatMap((n) => members.get(n)?.nodes ?? [])].map(
        watchStatus,
      ),
    async stop() {
      queue.stop();
      seeder.stop();
      await elector?.stop();
      await clusters.stop();
      await clusterNodes.stop();
      await members.stopAll();
      client.close();
    },
  };
}

/** Reconcile a Cluster when it or one of its ClusterNodes changes; seed the agents on every change. */
function wireInformers(
  clusters: Informer<ClusterObject>,
  clusterNodes: Informer<ClusterNodeObject>,
  queue: WorkQueue,
  seed: () => void,
): void {
  clusters
    .on("add", (c) => {
      queue.add(c.metadata.name);
      seed();
    })
    .on("update", (c) => {
      queue.add(c.metadata.name);
      seed();
    })
    .on("delete", (c) => {
      queue.add(c.metadata.name);
      seed();
    });
  clusterNodes
    .on("add", seed)
    .on("update", seed)
    .on("delete", (n) => {
      seed();
      const owner = clusterOf(n);
      if (owner) queue.add(owner); // recreate a ClusterNode deleted by hand
    });
}

/** The Lease loop of the controller ("kosmos-controller" in `namespace`). */
function startControllerElection(
  client: KubeClient,
  namespace: string,
  opts: ControllerOptions,
  log: Logger,
  on: { onStartedLeading: () => void; onStoppedLeading: () => void },
): LeaderElector {
  return startLeaderElection({
    client,
    namespace,
    name: "kosmos-controller",
    identity: opts.identity ?? `${process.env.HOSTNAME ?? "controller"}-${crypto.randomUUID().slice(0, 8)}`,
    leaseDurationSeconds: opts.leaseDurationSeconds,
    renewDeadlineMs: opts.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs,
    logger: log,
    ...on,
  });
}

/** RunningController.ready: caches synced and watching, and the Lease loop healthy. */
function readiness(
  clusters: Informer<ClusterObject>,
  clusterNodes: Informer<ClusterNodeObject>,
  elector: LeaderElector | undefined,
  leader: boolean,
): { ready: boolean; reason: string } {
  if (!clusters.hasSynced() || !clusterNodes.hasSynced())
    return {
      ready: false,
      reason: `informers not synced: ${clusters.lastError ?? clusterNodes.lastError ?? "listing"}`,
    };
  const failing = [clusters, clusterNodes].find((i) => i.health() === "failing");
  if (failing) return { ready: false, reason: `cannot watch ${failing.o.name}: ${failing.lastError}` };
  if (elector && !elector.healthy()) return { ready: false, reason: "the Lease cannot be read or written" };
  return { ready: true, reason: leader ? "leader" : `standby (leader: ${elector?.holder() ?? "?"})` };
}

function watchStatus(i: WatchedInformer): WatchStatus {
  return {
    name: i.o.name,
    synced: i.hasSynced(),
    relists: i.relists,
    expired: i.expired,
    stalls: i.stalls,
    failures: i.failures,
    ...(i.lastError ? { lastError: i.lastError } : {}),
  };
}

/** The seeding step: derive the topology from the caches and hand it to the Seeder when valid. */
function makeSeeder(o: {
  log: Logger;
  seeder: Seeder;
  discovering: boolean;
  opts: ControllerOptions;
  clusters: Informer<ClusterObject>;
  clusterNodes: Informer<ClusterNodeObject>;
  isLeader: () => boolean;
}): () => void {
  // Never push a topology the agents would refuse (e.g. a globalCIDRsMap key before the cluster's pod
  // CIDRs are detected): keep the last valid one and say why once.
  let lastInvalid: string | undefined;
  let lastCandidates = "";
  return () => {
    if (!o.isLeader() || !o.clusters.hasSynced() || !o.clusterNodes.hasSynced()) return;
    if (o.discovering) {
      const names = new Set(o.clusters.list().map((c) => c.metadata.name));
      const groups = discoverAgents(o.clusterNodes.list(), o.opts.discovery!, names);
      const key = JSON.stringify(groups);
      if (key !== lastCandidates) {
        lastCandidates = key;
        o.log.info(
          {
            agents: Object.fromEntries(Object.entries(groups).map(([c, eps]) => [c, eps.map((e) => e.url)])),
          },
          "discovered agents",
        );
        o.seeder.setGroups(groups, o.opts.discovery!.perCluster ?? 3);
      }
    }
    const t = { ...toTopology(o.clusters.list(), o.clusterNodes.list()), ...o.opts.extraTopology?.() };
    try {
      validateTopology(t);
    } catch (e) {
      const msg = (e as Error).message;
      if (msg !== lastInvalid) o.log.warn({ err: msg }, "derived topology is not valid yet; not seeding it");
      lastInvalid = msg;
      return;
    }
    lastInvalid = undefined;
    o.seeder.update(t);
  };
}
