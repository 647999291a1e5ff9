/**
 * A connection to one leaf cluster: a client from the Cluster's kubeconfig (a Secret or the inline
 * upstream field) and informers on its Nodes, Pods and the ConfigMaps/Secrets Kosmos copied there. A
 * connection is rebuilt only when the kubeconfig changes. A wrong kubeconfig is a problem to report;
 * an unreachable leaf is retried by the informers' own backoff, and said in `health()`.
 */
import { type ClusterObject, memberKubeconfig } from "../controller/index.ts";
import { Informer, KubeClient, kubeConfigFromYaml } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import type { LeafHealth } from "./health.ts";
import {
  type DataObject,
  type LeafCopyKind,
  type NodeObject,
  type PodObject,
  type PvcObject,
  type PvObject,
  SYNCED_LABEL,
} from "./types.ts";

export interface LeafProblem {
  reason: "NoKubeconfig" | "InvalidKubeconfig";
  message: string;
}

export interface LeafHandlers {
  onNodes(cluster: string): void;
  onPod(cluster: string, pod: PodObject, old: PodObject | undefined, deleted: boolean): void;
  onCopy(cluster: string, kind: LeafCopyKind, obj: DataObject): void;
  onHealth(cluster: string): void;
  /** A Kosmos PVC copy or any PV of the leaf changed. */
  onVolume(cluster: string, kind: "pvc" | "pv", obj: PvcObject | PvObject): void;
}

export class Leaf {
  readonly nodes: Informer<NodeObject>;
  readonly pods: Informer<PodObject>;
  readonly configMaps: Informer<DataObject>;
  readonly secrets: Informer<DataObject>;
  /** ServiceAccounts Kosmos made here (not `default`: that one is the namespace's own). */
  readonly serviceAccounts: Informer<DataObject>;
  /** The PVCs Kosmos copied here, and every PV (a copy binds to any of them). */
  readonly pvcs: Informer<PvcObject>;
  readonly pvs: Informer<PvObject>;
  /** Namespaces and ServiceAccounts known to exist (created or found), so each is ensured once. */
  readonly ensured = new Set<string>();
  /** The last heartbeat probe answered (GET /version). */
  answering = false;
  lastProbeError: string | undefined;
  /** The opt-in NotReady mode's state (health.ts); undefined when the mode is off. */
  health: LeafHealth | undefined;
  kubeletVersion = "";
  /** Pods per leaf node, maintained from the informer (capacity planning reads it often). */
  private readonly byNode = new Map<string, Map<string, PodObject>>();
  private readonly nodeOf = new Map<string, string>();

  constructor(
    readonly name: string,
    readonly source: string,
    readonly client: KubeClient,
    h: LeafHandlers,
    o: { logger: Logger; minBackoffMs?: number; maxBackoffMs?: number },
  ) {
    const common = { client, logger: o.logger, minBackoffMs: o.minBackoffMs, maxBackoffMs: o.maxBackoffMs };
    this.nodes = new Informer<NodeObject>({ ...common, path: "/api/v1/nodes", name: `nodes@${name}` });
    this.pods = new Informer<PodObject>({ ...common, path: "/api/v1/pods", name: `pods@${name}` });
    const sel = `${SYNCED_LABEL}=true`;
    this.configMaps = new Informer<DataObject>({
      ...common,
      path: "/api/v1/configmaps",
      labelSelector: sel,
      name: `configmaps@${name}`,
    });
    this.secrets = new Informer<DataObject>({
      ...common,
      path: "/api/v1/secrets",
      labelSelector: sel,
      name: `secrets@${name}`,
    });
    this.serviceAccounts = new Informer<DataObject>({
      ...common,
      path: "/api/v1/serviceaccounts",
      labelSelector: sel,
      name: `serviceaccounts@${name}`,
    });
    // A copy gone (collected, or deleted by hand) must be made again for the next pod that runs as it.
    this.serviceAccounts.on("delete", (o) =>
      this.ensured.delete(`sa/${o.metadata.namespace}/${o.metadata.name}`),
    );
    this.pvcs = new Informer<PvcObject>({
      ...common,
      path: "/api/v1/persistentvolumeclaims",
      labelSelector: sel,
      name: `pvcs@${name}`,
    });
    this.pvs = new Informer<PvObject>({ ...common, path: "/api/v1/persistentvolumes", name: `pvs@${name}` });
    for (const [kind, inf] of [
      ["pvc", this.pvcs],
      ["pv", this.pvs],
    ] as const) {
      const v = (o: PvcObject | PvObject): void => h.onVolume(name, kind, o);
      (inf as Informer<PvcObject | PvObject>).on("add", v).on("update", v).on("delete", v);
    }
    const nodes = (): void => h.onNodes(name);
    this.nodes
      .on("add", nodes)
      .on("delete", nodes)
      .on("update", (n, old) => {
        if (!old || nodeShape(n) !== nodeShape(old)) nodes();
      });
    const index = (p: PodObject, del: boolean): void => {
      const was = this.nodeOf.get(key(p));
      if (was) this.byNode.get(was)?.delete(key(p));
      this.nodeOf.delete(key(p));
      const n = p.spec?.nodeName;
      if (!del && n) {
        this.nodeOf.set(key(p), n);
        let m = this.byNode.get(n);
        if (!m) {
          m = new Map();
          this.byNode.set(n, m);
        }
        m.set(key(p), p);
      }
    };
    this.pods
      .on("add", (p) => {
        index(p, false);
        h.onPod(name, p, undefined, false);
      })
      .on("update", (p, old) => {
        index(p, false);
        h.onPod(name, p, old, false);
      })
      .on("delete", (p) => {
        index(p, true);
        h.onPod(name, p, undefined, true);
      });
    for (const [kind, inf] of [
      ["configmaps", this.configMaps],
      ["secrets", this.secrets],
      ["serviceaccounts", this.serviceAccounts],
    ] as const) {
      inf.on("add", (o) => h.onCopy(name, kind, o)).on("delete", (o) => h.onCopy(name, kind, o));
    }
    for (const inf of this.informers()) inf.onHealth(() => h.onHealth(name));
  }

  start(): void {
    for (const i of this.informers()) i.start();
  }

  informers(): Informer<NodeObject | PodObject | DataObject | PvcObject | PvObject>[] {
    return [
      this.nodes,
      this.pods,
      this.configMaps,
      this.secrets,
      this.serviceAccounts,
      this.pvcs,
      this.pvs,
    ] as Informer<NodeObject | PodObject | DataObject | PvcObject | PvObject>[];
  }

  synced(): boolean {
    return this.informers().every((i) => i.hasSynced());
  }

  /** Why the leaf cannot be worked with now, or undefined. */
  trouble(): string | undefined {
    const failing = this.informers().find((i) => i.health() === "failing" || !i.hasSynced());
    if (failing) return `${failing.o.name}: ${failing.lastError ?? "listing"}`;
    if (!this.answering && this.lastProbeError) return this.lastProbeError;
    return undefined;
  }

  /** The virtual nodes may say Ready=True: the leaf answers (and, in NotReady mode, has recovered). */
  healthy(): boolean {
    return this.answering && !this.health?.notReady;
  }

  /** The informer of one kind of copy. */
  copies(kind: LeafCopyKind): Informer<DataObject> {
    return kind === "configmaps" ? this.configMaps : kind === "secrets" ? this.secrets : this.serviceAccounts;
  }

  podsOn(node: string): PodObject[] {
    return [...(this.byNode.get(node)?.values() ?? [])];
  }

  async stop(): Promise<void> {
    for (const i of this.informers()) await i.stop();
    this.client.close();
  }
}

const key = (p: PodObject): string => `${p.metadata.namespace}/${p.metadata.name}`;

/** What of a leaf Node the virtual nodes are made of (heartbeats alone change nothing). */
export function nodeShape(n: NodeObject): string {
  return JSON.stringify([
    n.metadata.labels ?? {},
    n.spec?.unschedulable ?? false,
    n.spec?.taints ?? [],
    n.status?.allocatable ?? {},
    n.status?.conditions?.find((c) => c.type === "Ready")?.status,
  ]);
}

/** The leaf kubeconfig: `spec.kubeconfigSecretRef` (ours) or the inline upstream `spec.kubeconfig`
 * — read exactly as the ClusterLink controller reads a member's. */
export function leafKubeconfig(
  root: KubeClient,
  c: ClusterObject,
  namespace: string,
): Promise<{ yaml: string } | LeafProblem> {
  return memberKubeconfig(root, c, namespace);
}

/** A client from kubeconfig YAML, or the reason it cannot be made. */
export function leafClient(yaml: string): KubeClient | LeafProblem {
  try {
    return new KubeClient(kubeConfigFromYaml(yaml));
  } catch (e) {
    return { reason: "InvalidKubeconfig", message: `the kubeconfig cannot be used: ${(e as Error).message}` };
  }
}
