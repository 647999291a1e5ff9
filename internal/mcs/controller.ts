/**
 * The MCS controller: watches the Cluster objects of the host cluster and, in every joined cluster,
 * Services, EndpointSlices, ServiceExports and ServiceImports. Any event queues one pass (the queue
 * dedups a burst into one): list from the caches → planMcs (pure) → ClusterSetIP allocation (pure)
 * → the agents' seed (onPlan) → one apply item per member cluster: desired objects and diff (pure)
 * → apply. Apply items run in parallel and retry on their own, so a slow member holds up only
 * itself. No polling.
 *
 * It runs inside kosmos-controller (`--mcs`): it shares its leader election (a second writer of
 * ServiceImports would race the ClusterSetIP allocation) and the imports it computes travel to the
 * agents in the topology the controller seeds (`services()`).
 */
import type { KubeConfig } from "@kubernetes/client-node";
import type { ClusterObject } from "../controller/index.ts";
import { CLUSTERS_PATH } from "../controller/index.ts";
import { Informer, KubeClient, kubeConfigFromYaml, WorkQueue } from "../kube/index.ts";
import { type Logger, silentLogger } from "../observability/index.ts";
import type { Cidr } from "../topology/index.ts";
import { allocateClusterSetIPs, parseRange } from "./alloc.ts";
import { applyOps } from "./apply.ts";
import { planAutoExports } from "./auto.ts";
import { desiredInCluster, parseGlobals } from "./desired.ts";
import { diffCluster } from "./diff.ts";
import { McsMembers } from "./members.ts";
import { type ClusterView, type McsPlan, planMcs } from "./plan.ts";
import { LABEL_MANAGED, LABEL_MANAGED_BY, MANAGED_BY } from "./types.ts";

export const DEFAULT_CLUSTERSET_CIDR = "241.0.0.0/16";

export interface McsOptions {
  kubeconfig: string | KubeConfig;
  /** Default namespace of kubeconfig Secrets (kosmos-system). */
  namespace?: string;
  /** The range ClusterSetIPs come from (default 241.0.0.0/16). */
  clustersetCIDR?: string;
  /** `--auto-mcs-prefix`: namespaces whose Services are exported automatically. */
  autoPrefixes?: string[];
  /** `--reserved-namespaces` (default kube-system): never auto-exported. */
  reservedNamespaces?: string[];
  logger?: Logger;
  /** Start paused (a standby under leader election); `resume()` when leading. */
  paused?: boolean;
  installCrds?: boolean;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Called after a pass changed the plan (the kosmos-controller reseeds the agents). */
  onPlan?: (p: McsState) => void;
}

export interface McsState {
  plan: McsPlan;
  /** ClusterSetIP per `ns/name`. */
  ips: Map<string, string>;
  /** Global CIDR maps per cluster (the agents translate nothing: the slices already carry them). */
  clusters: string[];
}

export interface RunningMcs {
  state(): McsState | undefined;
  idle(): Promise<void>;
  synced(): boolean;
  pause(): void;
  resume(): void;
  /** Planning passes run, and plans or per-cluster applies that failed (metrics). */
  stats(): { passes: number; failures: number; lastError?: string };
  stop(): Promise<void>;
}

const SYNC = "sync";
/** Cluster objects changed: (re)connect members first (a Secret read each), then plan. */
const MEMBERS = "members";
/** `apply/<cluster>`: bring one member cluster to the latest plan. */
const APPLY = "apply/";
/**
 * Parallel work items. Each member cluster is its own item, so a member API server that answers
 * slowly or not at all (a request waits up to 30 s) holds up only its own cluster, never the plan,
 * the agents' seed or the other clusters.
 */
const WORKERS = 8;
/** An apply that took longer than this is logged as a warning (with its duration). */
const SLOW_APPLY_MS = 5000;

/** The latest plan, as the per-cluster apply items need it. */
interface Latest {
  plan: McsPlan;
  ips: Map<string, string>;
  globals: Map<string, ReturnType<typeof parseGlobals>>;
}

function viewOf(c: ClusterObject, m: NonNullable<ReturnType<McsMembers["get"]>>): ClusterView {
  return {
    name: c.metadata.name,
    globalCIDRs: c.spec.clusterLinkOptions?.globalCIDRsMap ?? {},
    services: m.services.list(),
    exports: m.exports.list(),
    slices: m.slices.list().filter((s) => s.metadata.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY),
  };
}

export async function startMcs(opts: McsOptions): Promise<RunningMcs> {
  const log = opts.logger ?? silentLogger();
  const range: Cidr = parseRange(opts.clustersetCIDR ?? DEFAULT_CLUSTERSET_CIDR);
  const kc = typeof opts.kubeconfig === "string" ? kubeConfigFromYaml(opts.kubeconfig) : opts.kubeconfig;
  const host = new KubeClient(kc);
  const backoff = { minBackoffMs: opts.minBackoffMs ?? 200, maxBackoffMs: opts.maxBackoffMs ?? 30_000 };
  const auto = { prefixes: opts.autoPrefixes ?? [], reserved: opts.reservedNamespaces ?? ["kube-system"] };
  let state: McsState | undefined;
  let latest: Latest | undefined;
  let lastStateKey = "";
  const stats = { passes: 0, failures: 0, lastError: undefined as string | undefined };

  const clusters = new Informer<ClusterObject>({
    client: host,
    path: CLUSTERS_PATH,
    name: "mcs-clusters",
    logger: log,
    ...backoff,
  });
  const members = new McsMembers(host, {
    namespace: opts.namespace ?? "kosmos-system",
    logger: log,
    onChange: () => queue.add(SYNC),
    installCrds: opts.installCrds,
    ...backoff,
  });

  async function syncMembers(): Promise<void> {
    const want = new Set<string>();
    for (const c of clusters.list()) {
      if (c.metadata.deletionTimestamp) continue;
      if (await members.ensure(c)) want.add(c.metadata.name);
    }
    for (const m of members.list()) if (!want.has(m.name)) await members.stop(m.name);
  }

  /**
   * Plan from the caches (pure, no I/O): the agents are seeded at once (onPlan), then every member
   * cluster gets its own apply item.
   */
  function pass(): void {
    if (!clusters.hasSynced() || !members.synced()) return; // each informer's first sync queues a pass
    const joined = clusters.list().filter((c) => members.get(c.metadata.name));
    const views = joined.map((c) => viewOf(c, members.get(c.metadata.name)!));
    const plan = planMcs(views);
    const keys = plan.imports.filter((i) => i.type === "ClusterSetIP").map((i) => `${i.namespace}/${i.name}`);
    const ips = allocateClusterSetIPs(keys, seenIps(members, state), range);
    const globals = new Map(views.map((v) => [v.name, parseGlobals(v.globalCIDRs)]));
    latest = { plan, ips, globals };
    state = { plan, ips, clusters: views.map((v) => v.name).sort() };
    const key = JSON.stringify([plan.imports, [...ips]]);
    if (key !== lastStateKey) {
      lastStateKey = key;
      opts.onPlan?.(state);
    }
    for (const v of views) queue.add(APPLY + v.name);
  }

  async function applyTo(name: string): Promise<void> {
    const m = members.get(name);
    const c = clusters.get(name);
    if (!m || !c || !latest) return; // left the clusterset since the pass queued it
    const error = await syncCluster(viewOf(c, m), m, { ...latest, auto, log });
    if (error !== undefined) throw new Error(error);
  }

  const queue = new WorkQueue({
    name: "mcs",
    logger: log,
    workers: WORKERS,
    ...backoff,
    process: async (key) => {
      if (key === MEMBERS) {
        await syncMembers();
        queue.add(SYNC);
        return;
      }
      try {
        if (key === SYNC) {
          stats.passes++;
          pass();
        } else await applyTo(key.slice(APPLY.length));
      } catch (e) {
        stats.failures++;
        stats.lastError = (e as Error).message;
        throw e;
      }
    },
  });
  if (opts.paused) queue.pause();
  const kick = (): void => queue.add(MEMBERS);
  // The kosmos-controller rewrites Cluster status often: only spec changes (kubeconfig, global CIDRs) count.
  clusters
    .on("add", kick)
    .on("update", (c, old) => {
      if (JSON.stringify(c.spec) !== JSON.stringify(old?.spec) || c.metadata.deletionTimestamp) kick();
    })
    .on("delete", kick);
  clusters.start();
  void clusters.waitSynced().then(kick);

  return {
    state: () => state,
    idle: () => queue.idle(),
    synced: () => clusters.hasSynced() && members.synced(),
    pause: () => queue.pause(),
    resume: () => {
      queue.resume();
      kick();
    },
    stats: () => ({ ...stats }),
    async stop() {
      queue.stop();
      await clusters.stop();
      await members.stopAll();
      host.close();
    },
  };
}

/**
 * The ClusterSet IPs by namespace/name: those the managed ServiceImports of every member carry now,
 * and for an import written nowhere yet, the one this controller already allocated and seeded (the
 * agents got it before any cluster did; a slow cluster must not make the next pass move it).
 */
function seenIps(members: McsMembers, prev: McsState | undefined): Map<string, string[]> {
  const seen = managedImportIps(members);
  for (const [k, ip] of prev?.ips ?? []) if (!seen.has(k)) seen.set(k, [ip]);
  return seen;
}

/** The ClusterSet IPs the managed ServiceImports of every member carry now, by namespace/name. */
function managedImportIps(members: McsMembers): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  for (const m of members.list()) {
    for (const i of m.imports.list()) {
      if (i.metadata.labels?.[LABEL_MANAGED] !== "true") continue;
      const k = `${i.metadata.namespace}/${i.metadata.name}`;
      seen.set(k, [...(seen.get(k) ?? []), ...(i.spec?.ips ?? [])]);
    }
  }
  return seen;
}

/** Bring one member cluster to the plan (imports, slices, auto-exports); its error message, if any. */
async function syncCluster(
  v: ClusterView,
  m: NonNullable<ReturnType<McsMembers["get"]>>,
  ctx: {
    plan: McsPlan;
    globals: Parameters<typeof desiredInCluster>[2];
    ips: ReturnType<typeof allocateClusterSetIPs>;
    auto: Parameters<typeof planAutoExports>[2];
    log: Logger;
  },
): Promise<string | undefined> {
  const { plan, globals, ips, auto, log } = ctx;
  const want = desiredInCluster(plan, v.name, globals, ips);
  const cur = {
    imports: m.imports.list(),
    slices: m.slices.list().filter((s) => s.metadata.labels?.[LABEL_MANAGED] === "true"),
    exports: m.exports.list(),
  };
  const { ops, foreign } = diffCluster(
    want,
    cur,
    plan.exports.filter((e) => e.cluster === v.name),
  );
  if (foreign.length)
    log.warn(
      { cluster: v.name, objects: foreign },
      "mcs: objects of these names exist and are not Kosmos's; left alone",
    );
  const autoOps = planAutoExports(v.services, v.exports, auto);
  if (!ops.length && !autoOps.create.length && !autoOps.delete.length) return undefined;
  const started = performance.now();
  try {
    const n = await applyOps(v.name, m.client, ops, autoOps, v.exports, log);
    const ms = Math.round(performance.now() - started);
    // a member API server this slow delays that cluster's imports (only its own: see WORKERS)
    if (ms > SLOW_APPLY_MS) log.warn({ cluster: v.name, applied: n, ms }, "mcs: cluster updated, slowly");
    else log.info({ cluster: v.name, applied: n, ms }, "mcs: cluster updated");
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
