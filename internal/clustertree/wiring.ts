/** What the root informers queue: Cluster spec changes, virtual node deletions, pods, copy sources. */
import { canonical } from "../controller/index.ts";
import { objectKey } from "../kube/index.ts";
import type { CopyKind } from "./deps.ts";
import { ownedBy } from "./nodes.ts";
import { carried } from "./pods.ts";
import { enqueueCopiesOf, enqueuePodsOf, type Tree } from "./tree.ts";
import { mirrorOwner } from "./storage.ts";
import {
  type DataObject,
  type PodObject,
  type PvcObject,
  type PvObject,
  SOURCE_UID_ANNOTATION,
} from "./types.ts";

/** A root ConfigMap / Secret changed: refresh its copies, and wake pods waiting for it. */
function onRootObject(t: Tree, kind: CopyKind, obj: DataObject): void {
  const ns = obj.metadata.namespace!;
  for (const [c, l] of t.leaves) {
    const leafName =
      kind === "configmaps" && obj.metadata.name === "kube-root-ca.crt"
        ? "master-root-ca.crt"
        : obj.metadata.name;
    if ((kind === "configmaps" ? l.configMaps : l.secrets).get(leafName, ns))
      t.q.copies.add(`${c}/${kind}/${ns}/${leafName}`);
    enqueuePodsOf(t, c, ns, true); // pods waiting for this object
  }
}

/** A root PVC changed: its leaf copies are looked at, and pods waiting for it are woken. */
function onRootPvc(t: Tree, c: PvcObject): void {
  const ns = c.metadata.namespace!;
  for (const [cluster, l] of t.leaves) {
    if (l.pvcs.get(c.metadata.name, ns)) t.q.volumes.add(`pvc/${cluster}/${ns}/${c.metadata.name}`);
    enqueuePodsOf(t, cluster, ns, true);
  }
}

/** A root PV mirror changed or went; one a user deleted while its leaf PV lives is remembered. */
function onRootPv(t: Tree, pv: PvObject, deleted: boolean): void {
  const cluster = mirrorOwner(pv);
  if (!cluster) return;
  const name = pv.metadata.name;
  const lpv = t.leaves.get(cluster)?.pvs.get(name);
  const uid = pv.metadata.annotations?.[SOURCE_UID_ANNOTATION];
  if (deleted && uid && lpv && !lpv.metadata.deletionTimestamp && uid === lpv.metadata.uid)
    t.podEnv.pvGone.set(name, uid);
  t.q.volumes.add(`pv/${cluster}/${name}`);
}

function wireStorage(t: Tree): void {
  const pvc = (c: PvcObject): void => onRootPvc(t, c);
  t.inf.pvcs.on("add", pvc).on("update", pvc).on("delete", pvc);
  t.inf.pvs
    .on("add", (p) => onRootPv(t, p, false))
    .on("update", (p) => onRootPv(t, p, false))
    .on("delete", (p) => onRootPv(t, p, true));
}

export function wireRootInformers(t: Tree): void {
  wireStorage(t);
  const { clusters, vnodes, pods } = t.inf;
  const q = t.q;
  clusters
    .on("add", (c) => q.clusters.add(c.metadata.name))
    .on("update", (c, old) => {
      // status writes (ours and the ClusterLink controller's) change nothing here
      if (
        !old ||
        canonical([c.spec, c.metadata.deletionTimestamp, c.metadata.annotations]) !==
          canonical([old.spec, old.metadata.deletionTimestamp, old.metadata.annotations])
      )
        q.clusters.add(c.metadata.name);
    })
    .on("delete", (c) => q.clusters.add(c.metadata.name));
  vnodes.on("delete", (n) => {
    const c = ownedBy(n);
    if (c) q.clusters.add(c);
  });
  const onRootPod = (p: PodObject): void => {
    if (t.refs.has(p.spec.nodeName ?? "") && carried(p)) q.enqueuePod(objectKey(p));
  };
  pods
    .on("add", onRootPod)
    .on("update", onRootPod)
    .on("delete", (p) => {
      if (
        t.refs.has(p.spec.nodeName ?? "") ||
        [...t.leaves.values()].some((l) => l.pods.get(p.metadata.name, p.metadata.namespace))
      )
        q.enqueuePod(objectKey(p));
      // Gone before its leaf pod was made: the copies made for it are looked at now (with a leaf pod,
      // that pod's deletion queues them).
      const ref = t.refs.get(p.spec.nodeName ?? "");
      if (ref && !t.leaves.get(ref.cluster)?.pods.get(p.metadata.name, p.metadata.namespace))
        enqueueCopiesOf(t, ref.cluster, p.metadata.namespace);
    });
  for (const [kind, inf] of [
    ["configmaps", t.inf.configMaps],
    ["secrets", t.inf.secrets],
  ] as const) {
    const h = (obj: DataObject): void => onRootObject(t, kind, obj);
    inf.on("add", h).on("update", h).on("delete", h);
  }
}
