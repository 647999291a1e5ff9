/**
 * The apply side of virtual nodes: compare the plan (model.ts) with the root's Nodes and write only
 * the difference — create, patch labels/taints/annotations, patch status, delete what the Cluster no
 * longer describes — and renew their Leases while the leaf answers. A root Node of the same name that
 * Kosmos did not create, or that another Cluster owns, is never touched (reported instead).
 */
import { canonical } from "../controller/index.ts";
import { isConflict, isNotFound, type KubeClient, microTime } from "../kube/index.ts";
import type { DesiredNode } from "./model.ts";
import {
  isLifecycleTaint,
  NODE_LABEL,
  type NodeCondition,
  type NodeObject,
  OWNED_BY_CLUSTER,
  type Taint,
} from "./types.ts";

export interface NodeEnv {
  root: KubeClient;
  /** Root Nodes Kosmos made (informer on `kosmos.io/node=true`), by name. */
  rootNode(name: string): NodeObject | undefined;
  /** Address the root API server reaches the kubelet API at, and its port. */
  address: string;
  port: number;
  /** An InternalDNS address too (`--node-dns-name`), for an API server that reaches us by a name. */
  dnsName?: string;
  kubeletVersion: string;
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/**
 * The taints to write: the plan's, then the root controller's lifecycle taints as they are; one per
 * key and effect (the API server rejects a duplicate).
 */
export function mergeTaints(planned: Taint[], current: Taint[]): Taint[] {
  const out: Taint[] = [];
  for (const t of [...planned, ...current.filter(isLifecycleTaint)])
    if (!out.some((x) => x.key === t.key && x.effect === t.effect)) out.push(t);
  return out;
}

/**
 * A strategic-merge patch of a resource map (capacity, allocatable) that makes it exactly `want`:
 * a merge patch only adds and changes keys, so each key `have` has and `want` lacks is set to null
 * (deleted). Without it a leaf whose nodes all went NotReady kept its old capacity on the root.
 */
export function exactMap(
  have: Record<string, string> | undefined,
  want: Record<string, string>,
): Record<string, string | null> {
  const out: Record<string, string | null> = { ...want };
  for (const k of Object.keys(have ?? {})) if (!(k in want)) out[k] = null;
  return out;
}

export const ownedBy = (n: NodeObject | undefined): string | undefined =>
  n?.metadata.labels?.[NODE_LABEL] === "true" ? n.metadata.annotations?.[OWNED_BY_CLUSTER] : undefined;

function healthyConditions(prev: NodeCondition[] | undefined): NodeCondition[] {
  const t = now();
  const c = (type: string, status: "True" | "False", reason: string, message: string): NodeCondition => {
    const old = prev?.find((x) => x.type === type);
    return {
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: t,
      lastTransitionTime: old?.status === status && old.lastTransitionTime ? old.lastTransitionTime : t,
    };
  };
  return [
    c("Ready", "True", "KubeletReady", "the leaf cluster answers (kosmos-clustertree)"),
    c("NetworkUnavailable", "False", "RouteCreated", "ClusterLink"),
    c("MemoryPressure", "False", "KubeletHasSufficientMemory", "leaf"),
    c("DiskPressure", "False", "KubeletHasNoDiskPressure", "leaf"),
    c("PIDPressure", "False", "KubeletHasSufficientPID", "leaf"),
  ];
}

function desiredStatus(d: DesiredNode, env: NodeEnv): Record<string, unknown> {
  return {
    capacity: d.capacity,
    allocatable: d.capacity,
    // Only the address of this process (and the name it is reached by, when given): the root API
    // server prefers a Hostname address, and a virtual node's name resolves nowhere.
    addresses: [
      { type: "InternalIP", address: env.address },
      ...(env.dnsName ? [{ type: "InternalDNS", address: env.dnsName }] : []),
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: env.port } },
    nodeInfo: {
      kubeletVersion: env.kubeletVersion,
      operatingSystem: "linux",
      architecture: "amd64",
      kubeProxyVersion: "",
      osImage: "kosmos virtual node",
      containerRuntimeVersion: "kosmos://leaf",
      kernelVersion: "",
      machineID: "",
      systemUUID: "",
      bootID: "",
    },
  };
}

/** Create or update one virtual node. Returns a problem in words when the name is taken. */
export async function applyNode(
  env: NodeEnv,
  d: DesiredNode,
  leafAnswers: boolean,
): Promise<string | undefined> {
  const path = `/api/v1/nodes/${encodeURIComponent(d.name)}`;
  let cur = env.rootNode(d.name);
  if (!cur) {
    try {
      cur = await env.root.create<NodeObject>("/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata: { name: d.name, labels: d.labels, annotations: d.annotations },
        spec: { taints: d.taints },
      });
    } catch (e) {
      if (!isConflict(e)) throw e;
      cur = await env.root.get<NodeObject>(path);
    }
  }
  const owner = ownedBy(cur);
  if (owner !== d.ref.cluster)
    return owner
      ? `root node ${d.name} belongs to Cluster ${owner}`
      : `root node ${d.name} exists and was not made by Kosmos; not touched`;
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(d.labels)) if (cur.metadata.labels?.[k] !== v) labels[k] = v;
  const annotations: Record<string, string> = {};
  for (const [k, v] of Object.entries(d.annotations))
    if (cur.metadata.annotations?.[k] !== v) annotations[k] = v;
  const taints = mergeTaints(d.taints, cur.spec?.taints ?? []);
  const sameTaints =
    canonical((cur.spec?.taints ?? []).map(({ timeAdded: _, ...t }) => t)) ===
    canonical(taints.map(({ timeAdded: _, ...t }) => t));
  if (Object.keys(labels).length > 0 || Object.keys(annotations).length > 0 || !sameTaints) {
    await env.root.patch(
      path,
      {
        metadata: { labels, annotations, resourceVersion: cur.metadata.resourceVersion },
        ...(sameTaints ? {} : { spec: { taints } }),
      },
      "merge",
    );
  }
  const want = desiredStatus(d, env);
  const have = cur.status ?? {};
  const ready = have.conditions?.find((c) => c.type === "Ready");
  const statusSame =
    canonical({
      // absent once every key was deleted (the API server omits an empty map)
      capacity: have.capacity ?? {},
      allocatable: have.allocatable ?? {},
      addresses: have.addresses,
      daemonEndpoints: have.daemonEndpoints,
      nodeInfo: have.nodeInfo,
    }) === canonical(want);
  // While the leaf does not answer, conditions are left to the root's node-lifecycle controller.
  const wantConditions = leafAnswers && ready?.status !== "True";
  if (!statusSame || wantConditions) {
    await env.root.patch(
      `${path}/status`,
      {
        status: {
          ...want,
          capacity: exactMap(have.capacity, d.capacity),
          allocatable: exactMap(have.allocatable, d.capacity),
          ...(wantConditions || !have.conditions ? { conditions: healthyConditions(have.conditions) } : {}),
        },
      },
      "strategic",
    );
  }
  return undefined;
}

export async function deleteNode(env: NodeEnv, name: string): Promise<void> {
  await env.root.delete(`/api/v1/nodes/${encodeURIComponent(name)}`);
  await env.root.delete(
    `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${encodeURIComponent(name)}`,
  );
}

/** Renew a virtual node's Lease (created on first use, owned by the Node so it goes with it). */
export async function renewLease(root: KubeClient, node: NodeObject): Promise<void> {
  const name = node.metadata.name;
  const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${encodeURIComponent(name)}`;
  const spec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microTime(new Date()) };
  try {
    await root.patch(path, { spec }, "merge");
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await root
      .create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: {
          name,
          namespace: "kube-node-lease",
          ownerReferences: node.metadata.uid
            ? [{ apiVersion: "v1", kind: "Node", name, uid: node.metadata.uid }]
            : undefined,
        },
        spec,
      })
      .catch((e2) => {
        if (!isConflict(e2)) throw e2;
      });
  }
}

/** Ready=False (the opt-in NotReady mode); the other conditions are left as they are. */
export async function markNotReady(root: KubeClient, name: string, message: string): Promise<void> {
  const t = now();
  await root.patch(
    `/api/v1/nodes/${encodeURIComponent(name)}/status`,
    {
      status: {
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "ClusterNotReachable",
            message,
            lastHeartbeatTime: t,
            lastTransitionTime: t,
          },
        ],
      },
    },
    "strategic",
  );
}
