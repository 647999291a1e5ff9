/**
 * PV/PVC between the root and a leaf (clustertree.md §1.15), the pure part:
 *   - a root PVC a leaf pod uses is copied into the leaf (`leafPvc`): the leaf's own PV controller (or
 *     provisioner) binds the copy there;
 *   - the leaf PV bound to such a copy is mirrored into the root (`rootPv`), pre-bound (`claimRef` with
 *     the root PVC's UID) to the root PVC, so the root's own PV controller binds the pair: the root PVC
 *     turns Bound with the leaf volume's name and capacity;
 *   - what only the leaf knows of a PVC (capacity, conditions, allocated resources) goes up
 *     (`pvcStatusPatch`); a resize of the root PVC goes down (`resizePatch`).
 * Decisions against upstream are in docs/clustertree.md ("PersistentVolumes and claims").
 */
import {
  GLOBAL_ANNOTATION,
  HOSTNAME_KEYS,
  type NodeSelectorTerm,
  OWNERS_ANNOTATION,
  type PvcObject,
  type PvObject,
  type Quantities,
  SOURCE_UID_ANNOTATION,
  SYNCED_LABEL,
} from "./types.ts";

/** Annotations the API server, PV controller or scheduler of one cluster write about its own binding. */
const bindingAnnotation = (k: string): boolean =>
  k.startsWith("pv.kubernetes.io/") ||
  k === "volume.kubernetes.io/selected-node" ||
  k.endsWith("kubernetes.io/storage-provisioner");

function keptAnnotations(a: Record<string, string> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(a ?? {}).filter(([k]) => !bindingAnnotation(k)));
}

export type LeafPvc = { ok: true; pvc: PvcObject } | { ok: false; field: string; message: string };

/**
 * The leaf copy of a root PVC. Kept: labels, annotations (not the root's binding ones), access
 * modes, requests/limits, selector (it selects leaf PVs there), storage class, volume mode. A claim
 * populated from a data source cannot be copied: the source is a root object the leaf cannot read.
 */
export function leafPvc(root: PvcObject): LeafPvc {
  const s = root.spec;
  for (const f of ["dataSource", "dataSourceRef"] as const)
    if (s[f])
      return {
        ok: false,
        field: `spec.${f}`,
        message: `PersistentVolumeClaim ${root.metadata.namespace}/${root.metadata.name} is populated from ${s[f]?.kind ?? "a data source"} ${s[f]?.name ?? ""} in the root, which a leaf cannot read`,
      };
  const spec: PvcObject["spec"] = {};
  if (s.accessModes) spec.accessModes = s.accessModes;
  if (s.resources) spec.resources = structuredClone(s.resources);
  if (s.selector) spec.selector = structuredClone(s.selector);
  if (s.storageClassName !== undefined) spec.storageClassName = s.storageClassName;
  if (s.volumeMode) spec.volumeMode = s.volumeMode;
  return {
    ok: true,
    pvc: {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: {
        name: root.metadata.name,
        namespace: root.metadata.namespace,
        labels: { ...(root.metadata.labels ?? {}), [SYNCED_LABEL]: "true" },
        annotations: {
          ...keptAnnotations(root.metadata.annotations),
          [GLOBAL_ANNOTATION]: "true",
          ...(root.metadata.uid ? { [SOURCE_UID_ANNOTATION]: root.metadata.uid } : {}),
        },
      },
      spec,
    },
  };
}

/** Node-affinity terms with node names (hostname keys) mapped to virtual node names. */
export function rewriteTerms(
  terms: NodeSelectorTerm[],
  virtualNodeOf: (leafNode: string) => string | undefined,
): NodeSelectorTerm[] {
  return terms.map((t) => ({
    ...t,
    ...(t.matchExpressions
      ? {
          matchExpressions: t.matchExpressions.map((e) =>
            HOSTNAME_KEYS.includes(e.key) && e.values
              ? { ...e, values: [...new Set(e.values.map((v) => virtualNodeOf(v) ?? v))] }
              : e,
          ),
        }
      : {}),
  }));
}

/**
 * The root mirror of a leaf PV bound to a Kosmos PVC copy: same name and volume source, node affinity
 * on hostnames rewritten to the virtual node(s), pre-bound to the root PVC (its UID), reclaim policy
 * `Retain` (the root has no plugin for a leaf's volume: the leaf reclaims it), and marked with its
 * owner cluster and the leaf PV's UID.
 */
export function rootPv(
  leaf: PvObject,
  rootClaim: PvcObject,
  cluster: string,
  virtualNodeOf: (leafNode: string) => string | undefined,
): PvObject {
  const spec = structuredClone(leaf.spec);
  spec.claimRef = {
    kind: "PersistentVolumeClaim",
    apiVersion: "v1",
    namespace: rootClaim.metadata.namespace,
    name: rootClaim.metadata.name,
    uid: rootClaim.metadata.uid,
  };
  spec.persistentVolumeReclaimPolicy = "Retain";
  const req = spec.nodeAffinity?.required;
  if (req)
    spec.nodeAffinity = {
      required: { nodeSelectorTerms: rewriteTerms(req.nodeSelectorTerms, virtualNodeOf) },
    };
  return {
    apiVersion: "v1",
    kind: "PersistentVolume",
    metadata: {
      name: leaf.metadata.name,
      labels: { ...(leaf.metadata.labels ?? {}), [SYNCED_LABEL]: "true" },
      annotations: {
        ...keptAnnotations(leaf.metadata.annotations),
        [GLOBAL_ANNOTATION]: "true",
        [OWNERS_ANNOTATION]: cluster,
        ...(leaf.metadata.uid ? { [SOURCE_UID_ANNOTATION]: leaf.metadata.uid } : {}),
      },
    },
    spec,
  };
}

/** The cluster a root PV mirror belongs to (upstream's owners list; ours has exactly one). */
export const mirrorOwner = (pv: PvObject | undefined): string | undefined =>
  pv?.metadata.labels?.[SYNCED_LABEL] === "true"
    ? pv.metadata.annotations?.[OWNERS_ANNOTATION]?.split(",")[0]
    : undefined;

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** The capacity of a root PV mirror, when the leaf PV's changed (a resize). */
export function pvCapacityPatch(
  leaf: PvObject,
  root: PvObject,
): { spec: { capacity: Quantities } } | undefined {
  return same(leaf.spec.capacity, root.spec.capacity)
    ? undefined
    : { spec: { capacity: leaf.spec.capacity ?? {} } };
}

/**
 * What of a bound leaf PVC's status the root PVC lacks: capacity, conditions (resizing), allocated
 * resources. The phase is not copied: the root's PV controller binds the root pair and owns it.
 */
export function pvcStatusPatch(leaf: PvcObject, root: PvcObject): Record<string, unknown> | undefined {
  if (leaf.status?.phase !== "Bound" || root.status?.phase !== "Bound") return undefined;
  const out: Record<string, unknown> = {};
  for (const k of ["capacity", "conditions", "allocatedResources", "allocatedResourceStatuses"] as const) {
    const l = leaf.status?.[k];
    if (!same(l, root.status?.[k])) out[k] = l ?? null;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A root PVC's storage request grown (or changed): the patch for its leaf copy. */
export function resizePatch(root: PvcObject, leaf: PvcObject): Record<string, unknown> | undefined {
  const want = root.spec.resources?.requests?.storage;
  if (!want || want === leaf.spec.resources?.requests?.storage) return undefined;
  return { spec: { resources: { requests: { storage: want } } } };
}

/** The leaf PVC copy was made for this root PVC (not an older one of the same name). */
export const copyOf = (leaf: PvcObject, root: PvcObject): boolean =>
  leaf.metadata.annotations?.[SOURCE_UID_ANNOTATION] === root.metadata.uid;
