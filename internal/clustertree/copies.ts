/**
 * Leaf copies after their pods (clustertree.md §1.14), one queue key per copy:
 * `cluster/kind/ns/leafName`, kind `configmaps`, `secrets` or `serviceaccounts`.
 *   - A ConfigMap/Secret copy is kept equal to its root object while a pod of that cluster needs it.
 *   - A ServiceAccount copy (any but `default`, which is the leaf namespace's own and never labelled)
 *     lives while a Kosmos pod of that namespace runs as it, or a root pod is on its way there.
 * A copy no pod needs, or whose root object is gone, is deleted with a uid precondition, so a newer
 * object of that name is never hit. Upstream collects none of them.
 */
import { isConflict, isNotFound } from "../kube/index.ts";
import { convertPod } from "./convert.ts";
import { isCopy, leafCopy, leafRefs, rootNameOf, upsertCopy } from "./deps.ts";
import type { Leaf } from "./leaf.ts";
import { isMine, type PodEnv } from "./pods.ts";
import type { LeafCopyKind, PodObject } from "./types.ts";

export async function reconcileCopy(env: PodEnv, key: string): Promise<void> {
  const [cluster, kind, ns, name] = key.split("/") as [string, LeafCopyKind, string, string];
  const leaf = env.leaf(cluster);
  if (!leaf?.synced()) return; // connected again later: every copy is looked at then
  const have = leaf.copies(kind).get(name, ns);
  if (!have || !isCopy(have)) return;
  if (kind === "serviceaccounts") {
    if (onTheirWay(env, leaf, cluster, ns).some((p) => p.spec.serviceAccountName === name)) return;
  } else {
    const rootObj = env.rootObject(kind, ns, rootNameOf(kind, name));
    if (rootObj && onTheirWay(env, leaf, cluster, ns).some((p) => leafRefs(p.spec)[kind].has(name))) {
      await upsertCopy(leaf.client, kind, leafCopy(kind, rootObj), have);
      return;
    }
  }
  try {
    await leaf.client.delete(
      `/api/v1/namespaces/${encodeURIComponent(ns)}/${kind}/${encodeURIComponent(name)}`,
      {},
      { apiVersion: "v1", kind: "DeleteOptions", preconditions: { uid: have.metadata.uid } },
    );
  } catch (e) {
    if (!isNotFound(e) && !isConflict(e)) throw e; // gone already, or a newer object: not ours
  }
}

/**
 * The leaf pod specs of namespace `ns` in `cluster` that need copies: Kosmos' leaf pods there, and
 * the converted specs of root pods bound to a virtual node of that cluster whose leaf pod is not made
 * yet (their copies are made before the pod).
 */
function onTheirWay(env: PodEnv, leaf: Leaf, cluster: string, ns: string): PodObject[] {
  const out: PodObject[] = [];
  for (const p of leaf.pods.list()) if (p.metadata.namespace === ns && isMine(p)) out.push(p);
  for (const p of env.rootPods()) {
    if (p.metadata.namespace !== ns || p.metadata.deletionTimestamp) continue;
    const ref = env.refOf(p.spec.nodeName);
    if (ref?.cluster !== cluster || leaf.pods.get(p.metadata.name, ns)) continue;
    const c = convertPod(p, ref);
    if (c.ok) out.push(c.pod);
  }
  return out;
}
