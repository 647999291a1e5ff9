/**
 * PV/PVC between the root and the leaves (clustertree.md §1.15), the side effects; the planning is
 * storage.ts. One queue, two kinds of key:
 *   `pvc/<cluster>/<ns>/<name>` — a leaf PVC copy: deleted when its root PVC is deleted (or is another
 *     one of the same name by now); a root resize goes down; capacity/conditions come up;
 *   `pv/<cluster>/<name>` — a leaf PV: mirrored into the root while it is bound to a Kosmos copy; the
 *     mirror is deleted when the leaf PV goes; a mirror a user deleted deletes the leaf PV.
 * The copy itself is made when a pod that uses the claim is created in the leaf (`copyPvcs`).
 */
import { isConflict, type KubeClient } from "../kube/index.ts";
import type { Logger } from "../observability/index.ts";
import { ClashError } from "./deps.ts";
import type { Leaf } from "./leaf.ts";
import { matchesSelector } from "./model.ts";
import {
  copyOf,
  leafPvc,
  mirrorOwner,
  pvCapacityPatch,
  pvcStatusPatch,
  resizePatch,
  rootPv,
} from "./storage.ts";
import {
  type PvcObject,
  type PvObject,
  SOURCE_UID_ANNOTATION,
  SYNCED_LABEL,
  type VirtualNodeRef,
} from "./types.ts";

export interface VolumeEnv {
  root: KubeClient;
  log: Logger;
  rootPvc(ns: string, name: string): PvcObject | undefined;
  rootPv(name: string): PvObject | undefined;
  refs(): Map<string, VirtualNodeRef>;
  leaf(cluster: string): Leaf | undefined;
  /** Root PV mirrors deleted while their leaf PV lived (by a user): name → the leaf PV's UID. */
  pvGone: Map<string, string>;
}

const pvcPath = (ns: string, name?: string): string =>
  `/api/v1/namespaces/${encodeURIComponent(ns)}/persistentvolumeclaims${name ? `/${encodeURIComponent(name)}` : ""}`;
const pvPath = (name: string): string => `/api/v1/persistentvolumes/${encodeURIComponent(name)}`;
const isCopy = (o: PvcObject | undefined): boolean => o?.metadata.labels?.[SYNCED_LABEL] === "true";

/** Delete with a UID precondition; gone already or replaced by another object is fine. */
async function deleteExactly(c: KubeClient, path: string, uid: string | undefined): Promise<void> {
  await c.delete(path, {}, { apiVersion: "v1", kind: "DeleteOptions", preconditions: { uid } }).catch((e) => {
    if (!isConflict(e)) throw e;
  });
}

/** Why a claim cannot be copied (the pod's creation is then given up, with an Event), or undefined. */
export type PvcProblem = { field: string; message: string };

/**
 * Copy the root PVCs a pod uses into its leaf (before the pod). A missing or terminating root PVC is
 * waited for (`missing` is thrown by the caller as a WaitError); a leaf PVC of the same name that Kosmos
 * did not make is a clash; a claim that cannot be copied is returned as a problem.
 */
export async function copyPvcs(
  env: VolumeEnv,
  leaf: Leaf,
  ns: string,
  names: string[],
  missing: (message: string) => Error,
): Promise<PvcProblem | undefined> {
  for (const name of names) {
    const root = env.rootPvc(ns, name);
    if (!root) throw missing(`PersistentVolumeClaim ${ns}/${name} not found in the root`);
    if (root.metadata.deletionTimestamp)
      throw missing(`PersistentVolumeClaim ${ns}/${name} is being deleted in the root`);
    const have = leaf.pvcs.get(name, ns);
    if (have && isCopy(have)) {
      if (copyOf(have, root)) continue;
      throw missing(
        `the leaf copy of PersistentVolumeClaim ${ns}/${name} belongs to an older claim; deleting it`,
      );
    }
    const want = leafPvc(root);
    if (!want.ok) return { field: want.field, message: want.message };
    try {
      await leaf.client.create(pvcPath(ns), want.pvc);
    } catch (e) {
      if (!isConflict(e)) throw e;
      throw new ClashError(
        `PersistentVolumeClaim ${ns}/${name} exists in the leaf and is not a Kosmos copy (or was just made)`,
      );
    }
  }
  return undefined;
}

async function reconcilePvc(env: VolumeEnv, leaf: Leaf, ns: string, name: string): Promise<void> {
  const have = leaf.pvcs.get(name, ns);
  if (!have || !isCopy(have)) return;
  const root = env.rootPvc(ns, name);
  if (!root || root.metadata.deletionTimestamp || !copyOf(have, root)) {
    // The leaf's pvc-protection keeps the copy while a leaf pod still mounts it, as the root's does.
    if (!have.metadata.deletionTimestamp)
      await deleteExactly(leaf.client, pvcPath(ns, name), have.metadata.uid);
    return;
  }
  const resize = resizePatch(root, have);
  if (resize)
    await leaf.client.patch(pvcPath(ns, name), resize, "merge").catch((e) => {
      // e.g. the leaf's storage class does not allow expansion: say so, do not retry forever
      env.log.warn({ cluster: leaf.name, pvc: `${ns}/${name}`, err: (e as Error).message }, "resize refused");
    });
  const status = pvcStatusPatch(have, root);
  if (status)
    await env.root
      .patch(`${pvcPath(ns, name)}/status`, { metadata: { uid: root.metadata.uid }, status }, "merge")
      .catch((e) => {
        if (!isConflict(e)) throw e;
      });
}

/** The virtual node standing for a leaf node of `cluster` (for PV node affinity). */
export function virtualNodeOf(
  env: VolumeEnv,
  cluster: string,
  leaf: Leaf,
  leafNode: string,
): string | undefined {
  const labels = leaf.nodes.get(leafNode)?.metadata.labels;
  for (const [name, r] of env.refs()) {
    if (r.cluster !== cluster) continue;
    if (r.mode === "one2cluster") return name;
    if (r.mode === "one2node" && r.leafNode === leafNode) return name;
    if (r.mode === "one2party" && r.selector && labels && matchesSelector(labels, r.selector)) return name;
  }
  return undefined;
}

/** The Kosmos PVC copy a leaf PV is bound to, if it is bound to one. */
function boundCopy(leaf: Leaf, pv: PvObject): PvcObject | undefined {
  const ref = pv.spec.claimRef;
  if (!ref?.name || !ref.namespace) return undefined;
  const pvc = leaf.pvcs.get(ref.name, ref.namespace);
  return pvc && isCopy(pvc) && pvc.metadata.uid === ref.uid ? pvc : undefined;
}

async function reconcilePv(env: VolumeEnv, leaf: Leaf, cluster: string, name: string): Promise<void> {
  const lpv = leaf.pvs.get(name);
  const rpv = env.rootPv(name);
  const owner = mirrorOwner(rpv);
  if (rpv && owner !== cluster) return; // another leaf's PV of the same name: its own key handles it
  if (!lpv || lpv.metadata.deletionTimestamp) {
    env.pvGone.delete(name);
    if (rpv && !rpv.metadata.deletionTimestamp) await deleteExactly(env.root, pvPath(name), rpv.metadata.uid);
    return;
  }
  const deletedInRoot =
    (rpv?.metadata.deletionTimestamp &&
      rpv.metadata.annotations?.[SOURCE_UID_ANNOTATION] === lpv.metadata.uid) ||
    (!rpv && env.pvGone.get(name) === lpv.metadata.uid);
  if (deletedInRoot) {
    env.log.info({ cluster, pv: name }, "root PV mirror deleted: deleting the leaf PV");
    await deleteExactly(leaf.client, pvPath(name), lpv.metadata.uid);
    return;
  }
  const claim = boundCopy(leaf, lpv);
  if (!claim) return; // not (or no longer) bound to a Kosmos copy: the leaf's own
  const rootClaim = env.rootPvc(claim.metadata.namespace!, claim.metadata.name);
  if (!rootClaim || rootClaim.metadata.deletionTimestamp || !copyOf(claim, rootClaim)) return;
  if (rpv) {
    const cap = pvCapacityPatch(lpv, rpv);
    if (cap) await env.root.patch(pvPath(name), cap, "merge");
    return;
  }
  try {
    await env.root.create(
      "/api/v1/persistentvolumes",
      rootPv(lpv, rootClaim, cluster, (n) => virtualNodeOf(env, cluster, leaf, n)),
    );
    env.log.info(
      { cluster, pv: name, claim: `${rootClaim.metadata.namespace}/${rootClaim.metadata.name}` },
      "root PV mirror created",
    );
  } catch (e) {
    if (!isConflict(e)) throw e;
    env.log.warn(
      { cluster, pv: name },
      "a root PV of this name exists and is not this leaf's mirror; not touched",
    );
  }
}

/** One key of the volumes queue. */
export async function reconcileVolume(env: VolumeEnv, key: string): Promise<void> {
  const [kind, cluster, a, b] = key.split("/") as ["pvc" | "pv", string, string, string | undefined];
  const leaf = env.leaf(cluster);
  if (!leaf?.synced()) return; // connected again later: every copy and PV is looked at then
  if (kind === "pvc") await reconcilePvc(env, leaf, a, b!);
  else await reconcilePv(env, leaf, cluster, a);
}

/** The keys an event on a leaf PVC copy or PV queues (the pair, both ways). */
export function leafVolumeKeys(cluster: string, kind: "pvc" | "pv", o: PvcObject | PvObject): string[] {
  if (kind === "pvc") {
    const c = o as PvcObject;
    const keys = [`pvc/${cluster}/${c.metadata.namespace}/${c.metadata.name}`];
    if (c.spec.volumeName) keys.push(`pv/${cluster}/${c.spec.volumeName}`);
    return keys;
  }
  const v = o as PvObject;
  const keys = [`pv/${cluster}/${v.metadata.name}`];
  const ref = v.spec.claimRef;
  if (ref?.namespace && ref.name) keys.push(`pvc/${cluster}/${ref.namespace}/${ref.name}`);
  return keys;
}
