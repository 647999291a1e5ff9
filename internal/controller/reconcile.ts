/**
 * Reconciling one Cluster: its ClusterNodes follow the member's Nodes (owned by the Cluster, so the
 * garbage collector removes them with it even when this controller is not running), and its status
 * says what was detected and whether the member can be watched.
 *
 * The Cluster CRD has no status subresource (as upstream's: its tools write status with a PUT on the
 * object), so status is written with a merge patch on the object itself. It carries no
 * observedGeneration: without a status subresource every status write bumps the generation.
 */
import { isConflict, isNotFound, KubeApiError, type KubeClient, type KubeObject } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import {
  detectPodCIDRs,
  detectServiceCIDRs,
  type IpPoolLike,
  type PodLike,
  serviceCidrFromError,
} from "./cidr.ts";
import { desiredClusterNodes } from "./mapping.ts";
import type { Member, MemberProblem } from "./members.ts";
import {
  CLUSTER_LABEL,
  type ClusterNodeObject,
  type ClusterObject,
  clusterOf,
  GROUP,
  VERSION,
} from "./types.ts";

export const CLUSTERS_PATH = `/apis/${GROUP}/${VERSION}/clusters`;
export const CLUSTER_NODES_PATH = `/apis/${GROUP}/${VERSION}/clusternodes`;

export interface ReconcileContext {
  client: KubeClient;
  logger: Logger;
  cluster(name: string): ClusterObject | undefined;
  clusterNodes(): ClusterNodeObject[];
  ensureMember(c: ClusterObject): Promise<Member | MemberProblem>;
  stopMember(name: string): Promise<void>;
  /** Look again later (the member is not reachable yet). */
  requeueAfter(name: string, ms: number): void;
}

/** What reconcile decided; the result of one pass, for logs and tests. */
export type ReconcileOutcome = "deleted" | "no-member" | "member-unreachable" | "synced";

export async function reconcileCluster(ctx: ReconcileContext, name: string): Promise<ReconcileOutcome> {
  const c = ctx.cluster(name);
  const owned = ctx
    .clusterNodes()
    .filter((n) => clusterOf(n) === name || n.metadata.labels?.[CLUSTER_LABEL] === name);
  if (!c || c.metadata.deletionTimestamp) {
    await ctx.stopMember(name);
    for (const n of owned) await deleteClusterNode(ctx.client, n.metadata.name);
    return "deleted";
  }
  const m = await ctx.ensureMember(c);
  if (!("client" in m)) {
    await writeStatus(ctx.client, c, { ready: "False", reason: m.reason, message: m.message });
    return "no-member";
  }
  if (!m.nodes.hasSynced() || m.nodes.health() === "failing") {
    // Not reachable (yet): keep the ClusterNodes we have — the network must not lose a cluster
    // because its API server is down — and say why.
    await writeStatus(ctx.client, c, {
      ready: "False",
      reason: "MemberUnreachable",
      message: `cannot list the member's Nodes: ${m.nodes.lastError ?? "connecting"}`,
    });
    ctx.requeueAfter(name, 5_000);
    return "member-unreachable";
  }
  const desired = desiredClusterNodes(c, m.nodes.list());
  const want = new Set(desired.map((d) => d.metadata.name));
  for (const d of desired) await upsertClusterNode(ctx, c, d);
  for (const n of owned) if (!want.has(n.metadata.name)) await deleteClusterNode(ctx.client, n.metadata.name);
  const cidrs = await detectCIDRs(c, m);
  await writeStatus(ctx.client, c, {
    ready: "True",
    reason: "Synced",
    message: `${desired.length} nodes`,
    nodeCount: desired.length,
    ...cidrs,
  });
  return "synced";
}

function ownerRef(c: ClusterObject) {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "Cluster",
    name: c.metadata.name,
    uid: c.metadata.uid ?? "",
    controller: true,
  };
}

async function upsertClusterNode(
  ctx: ReconcileContext,
  c: ClusterObject,
  d: ClusterNodeObject,
): Promise<void> {
  const cur = ctx.clusterNodes().find((n) => n.metadata.name === d.metadata.name);
  // Annotations and labels set by others are kept; the fingerprint follows the member Node's.
  const annotations = { ...(cur?.metadata.annotations ?? {}), ...(d.metadata.annotations ?? {}) };
  const labels = { ...(cur?.metadata.labels ?? {}), [CLUSTER_LABEL]: c.metadata.name };
  const owners = c.metadata.uid ? [ownerRef(c)] : [];
  const metadata = {
    name: d.metadata.name,
    labels,
    ...(Object.keys(annotations).length > 0 ? { annotations } : {}),
    ...(owners.length > 0 ? { ownerReferences: owners } : {}),
  };
  const body = { apiVersion: `${GROUP}/${VERSION}`, kind: "ClusterNode", metadata, spec: d.spec };
  if (!cur) {
    try {
      await ctx.client.create(CLUSTER_NODES_PATH, body);
    } catch (e) {
      if (!isConflict(e)) throw e;
      ctx.requeueAfter(c.metadata.name, 200); // exists but not yet in our cache: converge on the next pass
    }
    return;
  }
  const same =
    canonical(cur.spec) === canonical(d.spec) &&
    canonical(cur.metadata.labels ?? {}) === canonical(labels) &&
    canonical(cur.metadata.annotations ?? {}) === canonical(annotations) &&
    canonical(cur.metadata.ownerReferences ?? []) === canonical(owners);
  if (same) return;
  await ctx.client.replace(`${CLUSTER_NODES_PATH}/${d.metadata.name}`, {
    ...(cur as unknown as KubeObject),
    ...body,
    metadata: { ...cur.metadata, ...metadata, resourceVersion: cur.metadata.resourceVersion },
  });
}

export async function deleteClusterNode(client: KubeClient, name: string): Promise<void> {
  await client.delete(`${CLUSTER_NODES_PATH}/${encodeURIComponent(name)}`);
}

async function detectCIDRs(
  c: ClusterObject,
  m: Member,
): Promise<{ podCIDRs: string[]; serviceCIDRs: string[] }> {
  const o = c.spec.clusterLinkOptions ?? {};
  const pods = async (component: string): Promise<PodLike[]> => {
    try {
      return (
        await m.client.list<PodLike & KubeObject>("/api/v1/namespaces/kube-system/pods", {
          labelSelector: `component=${component}`,
        })
      ).items;
    } catch {
      return [];
    }
  };
  let ipPools: IpPoolLike[] = [];
  if ((o.cni ?? "calico") === "calico") {
    try {
      ipPools = (await m.client.list<IpPoolLike & KubeObject>("/apis/crd.projectcalico.org/v1/ippools"))
        .items;
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  const pod = detectPodCIDRs({
    override: o.clusterpodCIDRs,
    ipPools,
    controllerManagerPods: await pods("kube-controller-manager"),
    nodes: m.nodes.list(),
  });
  const apiserverPods = o.useexternalapiserver ? [] : await pods("kube-apiserver");
  let svc = detectServiceCIDRs({ apiserverPods });
  if (svc.cidrs.length === 0) {
    m.serviceProbe ??= await probeServiceCidr(m.client);
    if (m.serviceProbe.length > 0) svc = { cidrs: m.serviceProbe, source: "service-api" };
  }
  return { podCIDRs: pod.cidrs, serviceCIDRs: svc.cidrs };
}

/**
 * The service CIDRs of a cluster whose API server is not a pod (a process, a managed service): create
 * a Service with an out-of-range clusterIP and read the valid range from the refusal (dry run: nothing
 * is created even when the IP happens to be valid). The API server names only the range of the
 * family it allocated from, so each family is asked for on its own (IPv4 first); a family the cluster
 * does not have is refused with another message and contributes nothing.
 */
export async function probeServiceCidr(client: KubeClient): Promise<string[]> {
  const out: string[] = [];
  for (const [family, ip] of [
    ["IPv4", "0.0.0.1"],
    ["IPv6", "::1"],
  ] as const) {
    try {
      await client.create(
        "/api/v1/namespaces/default/services",
        {
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: "kosmos-service-cidr-probe" },
          spec: { clusterIP: ip, ipFamilies: [family], ports: [{ port: 80 }] },
        },
        { dryRun: "All" },
      );
    } catch (e) {
      // No answer is no information: fail the reconcile (retried) rather than cache "none".
      if (e instanceof KubeApiError && e.unreachable) throw e;
      for (const cidr of serviceCidrFromError((e as Error).message)) if (!out.includes(cidr)) out.push(cidr);
    }
  }
  return out;
}

interface StatusInput {
  ready: "True" | "False";
  reason: string;
  message: string;
  nodeCount?: number;
  podCIDRs?: string[];
  serviceCIDRs?: string[];
}

/** Merge-patch the Cluster's status when it changed. A member problem keeps the last detected CIDRs. */
async function writeStatus(client: KubeClient, c: ClusterObject, s: StatusInput): Promise<void> {
  const prev = c.status ?? {};
  const prevReady = prev.conditions?.find((x) => x.type === "Ready");
  const status = {
    ...prev,
    clusterLinkStatus: {
      podCIDRs: s.podCIDRs ?? prev.clusterLinkStatus?.podCIDRs ?? [],
      serviceCIDRs: s.serviceCIDRs ?? prev.clusterLinkStatus?.serviceCIDRs ?? [],
    },
    nodeCount: s.nodeCount ?? prev.nodeCount ?? 0,
    conditions: [
      ...(prev.conditions ?? []).filter((x) => x.type !== "Ready"),
      {
        type: "Ready",
        status: s.ready,
        reason: s.reason,
        message: s.message,
        lastTransitionTime:
          prevReady?.status === s.ready && prevReady.lastTransitionTime
            ? prevReady.lastTransitionTime
            : new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      },
    ],
  };
  if (canonical(prev) === canonical(status)) return;
  try {
    await client.patch(`${CLUSTERS_PATH}/${encodeURIComponent(c.metadata.name)}`, { status }, "merge");
  } catch (e) {
    if (!isNotFound(e)) throw e; // deleted meanwhile: nothing to report on
  }
}

/** JSON with sorted keys and no undefined values: for comparing desired and current objects. */
export function canonical(v: unknown): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === "object")
      return Object.fromEntries(
        Object.keys(x as Record<string, unknown>)
          .sort()
          .filter((k) => (x as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, sort((x as Record<string, unknown>)[k])]),
      );
    return x;
  };
  return JSON.stringify(sort(v));
}
