/**
 * Planning virtual nodes (pure): from a Cluster's `clusterTreeOptions` and its leaf's nodes and pods,
 * the root Nodes that should exist — names, labels, taints, annotations, capacity. The apply side
 * (nodes.ts) only compares this with what is in the root and writes the difference.
 *
 * Modes (clustertree.md §1.5), decided by `leafModels[0]` as upstream:
 *   - no models, or a first model without nodeSelector → one2cluster: `kosmos-<cluster>` for the whole leaf;
 *   - `nodeSelector.nodeName` → one2node: one root node per model, named as the leaf node;
 *   - `nodeSelector.labelSelector` → one2party: `kosmos-<leafNodeName|cluster>-<index>` (≤ 63 chars).
 * A later model of another kind than the first is reported, not silently used in the wrong mode.
 */
import type { ClusterObject, LeafModel } from "../controller/index.ts";
import { aggregate } from "./resources.ts";
import {
  isLifecycleTaint,
  type LabelSelector,
  type LeafMode,
  NODE_LABEL,
  NODE_MODE_ANNOTATION,
  NODE_TAINT,
  type NodeObject,
  OWNED_BY_CLUSTER,
  POD_LABEL,
  type PodObject,
  type Quantities,
  type Taint,
  VIRTUAL_NODE_PREFIX,
  type VirtualNodeRef,
} from "./types.ts";

export interface DesiredNode {
  name: string;
  ref: VirtualNodeRef;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  taints: Taint[];
  capacity: Quantities;
  /** Leaf nodes it stands for (names), for `get nodes` and capacity. */
  leafNodes: string[];
}

export interface NodePlan {
  nodes: DesiredNode[];
  /** Models that could not be used, in words for the Cluster's condition. */
  problems: string[];
}

/** Is ClusterTree on for this Cluster? Upstream defaults `enable` to true inside clusterTreeOptions. */
export function treeEnabled(c: ClusterObject): boolean {
  return c.spec.clusterTreeOptions !== undefined && c.spec.clusterTreeOptions.enable !== false;
}

export function modeOf(m: LeafModel | undefined): LeafMode {
  const sel = m?.nodeSelector;
  if (sel?.labelSelector && (sel.labelSelector.matchLabels || sel.labelSelector.matchExpressions))
    return "one2party";
  if (sel?.nodeName) return "one2node";
  return "one2cluster";
}

/** Kubernetes label-selector semantics (matchLabels AND matchExpressions). */
export function matchesSelector(labels: Record<string, string> | undefined, s: LabelSelector): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(s.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of s.matchExpressions ?? []) {
    const has = k(e.key);
    const vals = e.values ?? [];
    const ok =
      e.operator === "In"
        ? has && vals.includes(l[e.key]!)
        : e.operator === "NotIn"
          ? !has || !vals.includes(l[e.key]!)
          : e.operator === "Exists"
            ? has
            : e.operator === "DoesNotExist"
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
  function k(key: string): boolean {
    return Object.hasOwn(l, key);
  }
}

/** `kosmos-<base>-<i>`, cut to 63 characters without a trailing dash. */
export function partyNodeName(base: string, i: number): string {
  const suffix = `-${i}`;
  return `${VIRTUAL_NODE_PREFIX}${base}`.slice(0, 63 - suffix.length).replace(/[-.]+$/, "") + suffix;
}

const ROLE_LABELS = [
  "node-role.kubernetes.io/control-plane",
  "node-role.kubernetes.io/master",
  "node-role.kubernetes.io/node",
];

export interface PlanInput {
  cluster: ClusterObject;
  leafNodes: NodeObject[];
  podsByNode: (node: string) => PodObject[];
}

function template(
  name: string,
  cluster: string,
  mode: LeafMode,
): Omit<DesiredNode, "ref" | "capacity" | "leafNodes"> {
  return {
    name,
    labels: {
      [NODE_LABEL]: "true",
      "kubernetes.io/role": "agent",
      "kubernetes.io/hostname": name,
      "kubernetes.io/arch": "amd64",
      "kubernetes.io/os": "linux",
      "beta.kubernetes.io/os": "linux",
    },
    annotations: { [OWNED_BY_CLUSTER]: cluster, [NODE_MODE_ANNOTATION]: mode },
    taints: [{ ...NODE_TAINT }],
  };
}

function addModel(d: Omit<DesiredNode, "ref" | "capacity" | "leafNodes">, m: LeafModel | undefined): void {
  // LeafModel.labels / taints are honoured (upstream ignores them: quirk 3, fixed); ours win on clash.
  d.labels = { ...(m?.labels ?? {}), ...d.labels };
  for (const t of m?.taints ?? []) {
    if (!d.taints.some((x) => x.key === t.key && x.effect === t.effect))
      d.taints.push({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect });
  }
}

export function planNodes(i: PlanInput): NodePlan {
  const name = i.cluster.metadata.name;
  const models = i.cluster.spec.clusterTreeOptions?.leafModels ?? [];
  const mode = modeOf(models[0]);
  const problems: string[] = [];
  const nodes: DesiredNode[] = [];
  const byName = new Map(i.leafNodes.map((n) => [n.metadata.name, n]));
  const finish = (
    d: Omit<DesiredNode, "ref" | "capacity" | "leafNodes">,
    ref: VirtualNodeRef,
    leaf: NodeObject[],
  ): void => {
    nodes.push({
      ...d,
      ref,
      capacity: aggregate(leaf, i.podsByNode, POD_LABEL),
      leafNodes: leaf.map((n) => n.metadata.name).sort(),
    });
  };
  if (mode === "one2cluster") {
    const d = template(`${VIRTUAL_NODE_PREFIX}${name}`, name, mode);
    addModel(d, models[0]);
    finish(d, { cluster: name, mode }, i.leafNodes);
    return { nodes, problems };
  }
  models.forEach((m, idx) => {
    if (modeOf(m) !== mode) {
      problems.push(`leafModels[${idx}] is not ${mode} like leafModels[0]; skipped`);
      return;
    }
    if (mode === "one2node") {
      const leafName = m.nodeSelector!.nodeName!;
      const d = template(leafName, name, mode);
      const leaf = byName.get(leafName);
      if (leaf) {
        // The leaf node's labels (role labels removed) under ours; its taints after ours, except the
        // lifecycle ones: the root's controller owns those on the root node (copied, the two fought,
        // and a duplicate key made the patch invalid). The leaf node's state shows as its capacity.
        const own = Object.fromEntries(
          Object.entries(leaf.metadata.labels ?? {}).filter(([k]) => !ROLE_LABELS.includes(k)),
        );
        d.labels = { ...own, ...d.labels };
        for (const t of (leaf.spec?.taints ?? []).filter((x) => !isLifecycleTaint(x))) {
          if (!d.taints.some((x) => x.key === t.key && x.effect === t.effect))
            d.taints.push({ key: t.key, ...(t.value ? { value: t.value } : {}), effect: t.effect });
        }
      } else problems.push(`leafModels[${idx}]: leaf node ${leafName} not found`);
      addModel(d, m);
      finish(d, { cluster: name, mode, leafNode: leafName }, leaf ? [leaf] : []);
      return;
    }
    const sel = m.nodeSelector!.labelSelector!;
    const d = template(partyNodeName(m.leafNodeName || name, idx), name, mode);
    addModel(d, m);
    const leaf = i.leafNodes.filter((n) => matchesSelector(n.metadata.labels, sel));
    finish(d, { cluster: name, mode, selector: sel }, leaf);
  });
  return { nodes, problems };
}
