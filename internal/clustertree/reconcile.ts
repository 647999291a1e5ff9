/**
 * The cluster queue's reconcile: for one Cluster, its finalizer, its leaf connection, its virtual
 * nodes (planned from the leaf, applied to the root) and its condition.
 */
import type { ClusterObject } from "../controller/index.ts";
import { isNotFound, KubeClient, objectKey } from "../kube/index.ts";
import { connectLeaf, stopLeaf } from "./connections.ts";
import { type Leaf, leafClient, leafKubeconfig } from "./leaf.ts";
import { type DesiredNode, planNodes, treeEnabled } from "./model.ts";
import { applyNode, deleteNode, ownedBy } from "./nodes.ts";
import { CLUSTERS_PATH, enqueueCopiesOf, enqueuePodsOf, nodeEnvOf, type Tree } from "./tree.ts";
import { CONDITION, FINALIZER, POD_LABEL, ROOT_ROLE_ANNOTATION } from "./types.ts";
import { leafVolumeKeys } from "./volumes.ts";

async function writeCondition(
  t: Tree,
  c: ClusterObject,
  status: "True" | "False",
  reason: string,
  message: string,
): Promise<void> {
  const prev = c.status?.conditions ?? [];
  const old = prev.find((x) => x.type === CONDITION);
  if (old?.status === status && old.reason === reason && old.message === message) return;
  const cond = {
    type: CONDITION,
    status,
    reason,
    message,
    lastTransitionTime:
      old?.status === status && old.lastTransitionTime
        ? old.lastTransitionTime
        : new Date().toISOString().replace(/\.\d+Z$/, "Z"),
  };
  const conditions = [...prev.filter((x) => x.type !== CONDITION), cond];
  await t.root.patch(
    `${CLUSTERS_PATH}/${encodeURIComponent(c.metadata.name)}`,
    { metadata: { resourceVersion: c.metadata.resourceVersion }, status: { conditions } },
    "merge",
  );
}

async function setFinalizer(t: Tree, c: ClusterObject, on: boolean): Promise<void> {
  const has = c.metadata.finalizers?.includes(FINALIZER) ?? false;
  if (has === on) return;
  const finalizers = on
    ? [...(c.metadata.finalizers ?? []), FINALIZER]
    : (c.metadata.finalizers ?? []).filter((f) => f !== FINALIZER);
  await t.root.patch(
    `${CLUSTERS_PATH}/${encodeURIComponent(c.metadata.name)}`,
    { metadata: { finalizers, resourceVersion: c.metadata.resourceVersion } },
    "merge",
  );
}

/** Delete the cluster's virtual nodes not in `keep`, and forget them. */
async function removeNodes(t: Tree, cluster: string, keep: Set<string>): Promise<void> {
  for (const n of t.inf.vnodes.list()) {
    if (ownedBy(n) !== cluster || keep.has(n.metadata.name)) continue;
    await deleteNode({ ...nodeEnvOf(t, t.leaves.get(cluster) ?? ({} as Leaf)) }, n.metadata.name);
    t.log.info({ cluster, node: n.metadata.name }, "virtual node removed");
  }
  for (const [n, r] of t.refs) if (r.cluster === cluster && !keep.has(n)) t.refs.delete(n);
}

async function teardown(t: Tree, name: string): Promise<void> {
  await stopLeaf(t, name);
  t.plans.delete(name);
  await removeNodes(t, name, new Set());
}

/** The leaf connection for the Cluster's current kubeconfig, or undefined (condition written). */
async function ensureLeaf(t: Tree, c: ClusterObject): Promise<Leaf | undefined> {
  const name = c.metadata.name;
  const got = await leafKubeconfig(t.root, c, t.namespace);
  if (!("yaml" in got)) {
    await stopLeaf(t, name);
    await writeCondition(t, c, "False", got.reason, got.message);
    t.q.clusters.addAfter(name, 30_000); // a Secret that appears later is not watched: look again
    return undefined;
  }
  const leaf = t.leaves.get(name);
  if (leaf && leaf.source === got.yaml) return leaf;
  await stopLeaf(t, name);
  const client = leafClient(got.yaml);
  if (!(client instanceof KubeClient)) {
    await writeCondition(t, c, "False", client.reason, client.message);
    return undefined;
  }
  return connectLeaf(t, name, got.yaml, client);
}

/** Plan the virtual nodes from the leaf and apply them; the applied ones and the problems. */
async function applyPlan(
  t: Tree,
  c: ClusterObject,
  leaf: Leaf,
): Promise<{ applied: DesiredNode[]; problems: string[] }> {
  const name = c.metadata.name;
  const plan = planNodes({ cluster: c, leafNodes: leaf.nodes.list(), podsByNode: (n) => leaf.podsOn(n) });
  const problems = [...plan.problems];
  const applied: DesiredNode[] = [];
  for (const d of plan.nodes) {
    const other = t.refs.get(d.name);
    if (other && other.cluster !== name) {
      problems.push(`root node ${d.name} belongs to Cluster ${other.cluster}`);
      continue;
    }
    const p = await applyNode(nodeEnvOf(t, leaf), d, leaf.healthy());
    if (p) problems.push(p);
    else {
      applied.push(d);
      t.refs.set(d.name, d.ref);
    }
  }
  t.plans.set(name, { nodes: applied, problems });
  await removeNodes(t, name, new Set(applied.map((d) => d.name)));
  return { applied, problems };
}

/** After a cluster's first plan: queue its pods, its copies, and leaf pods whose root pod is gone. */
function seedLeaf(t: Tree, name: string, leaf: Leaf): void {
  enqueuePodsOf(t, name);
  enqueueCopiesOf(t, name);
  for (const x of leaf.pvcs.list()) for (const k of leafVolumeKeys(name, "pvc", x)) t.q.volumes.add(k);
  for (const x of leaf.pvs.list()) for (const k of leafVolumeKeys(name, "pv", x)) t.q.volumes.add(k);
  // leaf pods whose root pod is gone (deleted while no clustertree ran)
  for (const lp of leaf.pods.list())
    if (
      lp.metadata.labels?.[POD_LABEL] === "true" &&
      !t.inf.pods.get(lp.metadata.name, lp.metadata.namespace)
    )
      t.q.enqueuePod(objectKey(lp));
}

export async function reconcileCluster(t: Tree, name: string): Promise<void> {
  const c = t.inf.clusters.get(name);
  if (!c || c.metadata.annotations?.[ROOT_ROLE_ANNOTATION] === "root") return teardown(t, name);
  if (c.metadata.deletionTimestamp || !treeEnabled(c)) {
    await teardown(t, name);
    try {
      await setFinalizer(t, c, false);
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    return;
  }
  await setFinalizer(t, c, true);
  const leaf = await ensureLeaf(t, c);
  if (!leaf) return;
  if (!leaf.synced()) {
    const message = `cannot list the leaf: ${leaf.trouble() ?? "connecting"}`;
    await writeCondition(t, c, "False", "LeafUnreachable", message);
    return; // its informers' health change brings us back
  }
  const first = !t.plans.has(name);
  const { applied, problems } = await applyPlan(t, c, leaf);
  if (first) seedLeaf(t, name, leaf);
  if (problems.length > 0) await writeCondition(t, c, "False", "LeafModelProblem", problems.join("; "));
  else if (!leaf.answering)
    await writeCondition(
      t,
      c,
      "False",
      "LeafUnreachable",
      leaf.lastProbeError ?? "the leaf API server does not answer",
    );
  else
    await writeCondition(
      t,
      c,
      "True",
      "LeafReady",
      `${applied.length} virtual node(s): ${applied.map((d) => d.name).join(", ")}`,
    );
}
