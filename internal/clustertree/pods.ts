/**
 * Root pod ↔ leaf pod (clustertree.md §1.9–1.12), one reconcile per root pod key `ns/name`:
 *   - bound to a virtual node and no leaf pod: copy what it needs (namespace, ServiceAccount, token,
 *     ConfigMaps, Secrets), then create the converted pod in the leaf;
 *   - leaf pod exists: carry images/labels/annotations/activeDeadlineSeconds down, status up;
 *   - root pod terminating: delete the leaf pod with the root's grace period; once it is gone,
 *     remove the root pod (grace 0) — the step a kubelet does for a real node;
 *   - leaf pod gone while the root pod was running there: remove the root pod, its workload replaces it;
 *   - root pod gone: delete the Kosmos-made leaf pod of that name.
 * A leaf pod without `kosmos-io/pod=true` is never touched; neither is one made for an older root pod
 * of the same name until it is gone.
 */

import { KosmosError } from "../errors/index.ts";
import { isConflict, isNotFound, type KubeClient } from "../kube/index.ts";
import { convertPod, leafPodPatch, type PodDeps, tokenSecretName } from "./convert.ts";
import { ClashError, type CopyKind, leafCopy, tokenSecret, upsertCopy } from "./deps.ts";
import type { Leaf } from "./leaf.ts";
import { statusFromLeaf } from "./status.ts";
import {
  DAEMONSET_ALLOW,
  type DataObject,
  POD_LABEL,
  type PodObject,
  ROOT_UID_ANNOTATION,
  SYNCED_LABEL,
  type VirtualNodeRef,
} from "./types.ts";
import { copyPvcs, type PvcProblem, type VolumeEnv } from "./volumes.ts";

export interface PodEnv extends VolumeEnv {
  root: KubeClient;
  rootPod(key: string): PodObject | undefined;
  rootPods(): PodObject[];
  rootObject(kind: CopyKind, ns: string, name: string): DataObject | undefined;
  refOf(node: string | undefined): VirtualNodeRef | undefined;
  leaf(cluster: string): Leaf | undefined;
  leaves(): Leaf[];
  /** Root pods whose leaf pod was deleted while they were not terminating: root UID by key. */
  leafGone: Map<string, string>;
  event(pod: PodObject, type: "Normal" | "Warning", reason: string, message: string): void;
  counters: Counters;
}

/** What ClusterTree did since start (for /metrics and /status). */
export interface Counters {
  created: number;
  deleted: number;
  statusWrites: number;
  /** Leaf pod patches (labels/annotations/images carried down). */
  leafPatches: number;
  /** Pod reconciles run, and the time they took and waited in the queue (ms, summed). */
  podReconciles: number;
  podReconcileMs: number;
  podQueueWaitMs: number;
}

export const newCounters = (): Counters => ({
  created: 0,
  deleted: 0,
  statusWrites: 0,
  leafPatches: 0,
  podReconciles: 0,
  podReconcileMs: 0,
  podQueueWaitMs: 0,
});

/**
 * Root pods ClusterTree carries to a leaf (upstream's filter): not in kube-system, not DaemonSet pods
 * (a DaemonSet that tolerates every taint lands a pod on each virtual node; the leaf has its own
 * daemons) unless annotated `kosmos-io/daemonset-allow`.
 */
export function carried(p: PodObject): boolean {
  if (p.metadata.namespace === "kube-system") return false;
  if (p.metadata.labels?.["daemonset.kosmos.io/managed"] !== undefined) return false;
  const ds = p.metadata.ownerReferences?.some((o) => o.kind === "DaemonSet");
  return !ds || p.metadata.annotations?.[DAEMONSET_ALLOW] !== undefined;
}

/** Not an error of the pod: something it needs is not there yet (retried with backoff). */
export class WaitError extends KosmosError<"KOSMOS_TREE_WAIT"> {
  constructor(message: string) {
    super("KOSMOS_TREE_WAIT", message);
  }
}

const podPath = (ns: string, name: string): string =>
  `/api/v1/namespaces/${encodeURIComponent(ns)}/pods/${encodeURIComponent(name)}`;
export const isMine = (p: PodObject | undefined): boolean => p?.metadata.labels?.[POD_LABEL] === "true";

async function forceDeleteRoot(env: PodEnv, p: PodObject): Promise<void> {
  await env.root
    .delete(
      podPath(p.metadata.namespace!, p.metadata.name),
      { gracePeriodSeconds: 0 },
      {
        apiVersion: "v1",
        kind: "DeleteOptions",
        gracePeriodSeconds: 0,
        preconditions: { uid: p.metadata.uid },
      },
    )
    .catch((e) => {
      if (!isConflict(e)) throw e; // another pod of that name by now: not ours to delete
    });
}

export async function reconcilePod(env: PodEnv, key: string): Promise<void> {
  const [ns, name] = key.split("/") as [string, string];
  const root = env.rootPod(key);
  if (!root) {
    for (const l of env.leaves()) {
      const lp = l.pods.get(name, ns);
      if (lp && isMine(lp) && !lp.metadata.deletionTimestamp) {
        await l.client.delete(podPath(ns, name));
        env.counters.deleted++;
      }
    }
    return;
  }
  const ref = env.refOf(root.spec.nodeName);
  if (!ref || !carried(root)) return; // not on a virtual node, or not ours to carry
  const leaf = env.leaf(ref.cluster);
  if (!leaf?.synced()) throw new WaitError(`leaf ${ref.cluster} is not connected yet`);
  const lp = leaf.pods.get(name, ns);
  if (lp && !isMine(lp)) {
    env.event(
      root,
      "Warning",
      "NameClash",
      `pod ${key} exists in leaf ${ref.cluster} and was not made by Kosmos; not touched`,
    );
    return;
  }
  const stale = lp && lp.metadata.annotations?.[ROOT_UID_ANNOTATION] !== root.metadata.uid;
  if (root.metadata.deletionTimestamp) {
    if (!lp || stale) {
      await forceDeleteRoot(env, root);
      env.leafGone.delete(key);
      return;
    }
    if (!lp.metadata.deletionTimestamp) {
      const grace = root.metadata.deletionGracePeriodSeconds ?? root.spec.terminationGracePeriodSeconds;
      await leaf.client.delete(podPath(ns, name), grace === undefined ? {} : { gracePeriodSeconds: grace });
      env.counters.deleted++;
    }
    return; // the leaf pod's delete event brings us back
  }
  if (stale) {
    if (!lp.metadata.deletionTimestamp)
      await leaf.client.delete(podPath(ns, name), { gracePeriodSeconds: 0 });
    throw new WaitError(`waiting for the leaf pod of an older ${key} to go`);
  }
  if (!lp) {
    const ranThere = env.leafGone.get(key) === root.metadata.uid || Boolean(root.status?.hostIP);
    if (ranThere) {
      env.event(root, "Warning", "LeafPodGone", `the pod in leaf ${ref.cluster} is gone; removing this pod`);
      await forceDeleteRoot(env, root);
      env.leafGone.delete(key);
      return;
    }
    await createLeafPod(env, leaf, root, ref);
    return;
  }
  if (lp.metadata.deletionTimestamp) return;
  const c = convertPod(root, ref);
  if (c.ok) {
    const patch = leafPodPatch(c.pod, lp);
    if (patch) {
      await leaf.client.patch(podPath(ns, name), patch, "strategic");
      env.counters.leafPatches++;
    }
  }
  // A leaf pod the leaf has not scheduled yet says nothing new (and would wipe the root's
  // PodScheduled=True); one the leaf cannot schedule does: its PodScheduled=False goes up.
  const unschedulable = lp.status?.conditions?.some((c) => c.type === "PodScheduled" && c.status === "False");
  if (!lp.spec.nodeName && !unschedulable) return;
  const status = statusFromLeaf(lp.status, root.status);
  if (status) {
    try {
      await env.root.patch(
        `${podPath(ns, name)}/status`,
        { metadata: { uid: root.metadata.uid }, status },
        "merge",
      );
      env.counters.statusWrites++;
    } catch (e) {
      if (!isNotFound(e) && !isConflict(e)) throw e;
    }
  }
}

async function createLeafPod(env: PodEnv, leaf: Leaf, root: PodObject, ref: VirtualNodeRef): Promise<void> {
  const c = convertPod(root, ref);
  if (!c.ok) {
    env.event(root, "Warning", "ConvertFailed", `${c.field}: ${c.message}`);
    return; // the pod spec is immutable there: retrying cannot help
  }
  const ns = root.metadata.namespace!;
  await ensureNamespace(leaf, ns);
  await ensureServiceAccount(leaf, ns, c.deps.serviceAccount);
  try {
    const problem = await copyDeps(env, leaf, root, c.deps);
    if (problem) {
      env.event(root, "Warning", "ConvertFailed", `${problem.field}: ${problem.message}`);
      return; // the claim's spec is immutable: retrying cannot help
    }
  } catch (e) {
    if (e instanceof ClashError || e instanceof WaitError)
      env.event(root, "Warning", e instanceof ClashError ? "NameClash" : "Waiting", e.message);
    throw e;
  }
  try {
    await leaf.client.create(`/api/v1/namespaces/${encodeURIComponent(ns)}/pods`, c.pod);
    env.counters.created++;
  } catch (e) {
    if (!isConflict(e)) {
      env.event(root, "Warning", "LeafCreateFailed", `leaf ${ref.cluster}: ${(e as Error).message}`);
      throw e;
    }
  }
}

async function ensureNamespace(leaf: Leaf, ns: string): Promise<void> {
  if (leaf.ensured.has(`ns/${ns}`)) return;
  try {
    await leaf.client.create("/api/v1/namespaces", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns },
    });
  } catch (e) {
    if (!isConflict(e)) throw e;
  }
  leaf.ensured.add(`ns/${ns}`);
}

async function ensureServiceAccount(leaf: Leaf, ns: string, sa: string): Promise<void> {
  if (leaf.ensured.has(`sa/${ns}/${sa}`)) return;
  try {
    await leaf.client.create(`/api/v1/namespaces/${encodeURIComponent(ns)}/serviceaccounts`, {
      apiVersion: "v1",
      kind: "ServiceAccount",
      // `default` is what the leaf's own controller makes in every namespace (we may only be first):
      // the namespace's, not a copy. Any other is a copy (labelled).
      metadata: { name: sa, ...(sa === "default" ? {} : { labels: { [SYNCED_LABEL]: "true" } }) },
      automountServiceAccountToken: false,
    });
  } catch (e) {
    if (!isConflict(e)) throw e; // the leaf's own (e.g. `default`): used as it is
  }
  leaf.ensured.add(`sa/${ns}/${sa}`);
}

async function copyDeps(
  env: PodEnv,
  leaf: Leaf,
  root: PodObject,
  d: PodDeps,
): Promise<PvcProblem | undefined> {
  const ns = root.metadata.namespace!;
  const wanted: [CopyKind, string, boolean][] = [
    ...d.configMaps.map((n): [CopyKind, string, boolean] => ["configmaps", n, true]),
    ...d.optionalConfigMaps.map((n): [CopyKind, string, boolean] => ["configmaps", n, false]),
    ...d.secrets.map((n): [CopyKind, string, boolean] => ["secrets", n, true]),
    ...d.optionalSecrets.map((n): [CopyKind, string, boolean] => ["secrets", n, false]),
  ];
  if (d.token) {
    const tname = tokenSecretName(d.serviceAccount);
    const t = env.rootObject("secrets", ns, tname);
    if (!t) {
      await env.root
        .create(`/api/v1/namespaces/${encodeURIComponent(ns)}/secrets`, tokenSecret(ns, d.serviceAccount))
        .catch((e) => {
          if (!isConflict(e)) throw e;
        });
      throw new WaitError(`waiting for the root to fill the token Secret ${ns}/${tname}`);
    }
    if (!t.data?.token) throw new WaitError(`waiting for the root to fill the token Secret ${ns}/${tname}`);
    wanted.push(["secrets", tname, true]);
  }
  for (const [kind, name, required] of wanted) {
    const obj = env.rootObject(kind, ns, name);
    if (!obj) {
      if (required)
        throw new WaitError(
          `${kind === "configmaps" ? "ConfigMap" : "Secret"} ${ns}/${name} not found in the root`,
        );
      continue;
    }
    const want = leafCopy(kind, obj);
    const inf = kind === "configmaps" ? leaf.configMaps : leaf.secrets;
    await upsertCopy(leaf.client, kind, want, inf.get(want.metadata.name, ns));
  }
  return copyPvcs(env, leaf, ns, d.pvcs, (m) => new WaitError(m));
}
