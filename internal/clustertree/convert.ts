/**
 * Root pod → leaf pod (pure; clustertree.md §1.10, and §1.11 for the identity). What changes:
 *   - metadata: only name, namespace, labels (+ `kosmos-io/pod=true`) and annotations survive
 *     (+ `kosmos-io/tripped: {}` as upstream, + the root pod's UID, ours); uid, resourceVersion,
 *     ownerReferences, status go;
 *   - placement: `nodeSelector`, `tolerations`, `topologySpreadConstraints` and required node affinity
 *     referred to root nodes and are cleared — or replaced by the `kosmos.io/cluster-selector`
 *     annotation's JSON; one2node keeps `nodeName` = the leaf node; one2party gets a required node
 *     affinity built from the model's selector; `schedulerName: kosmos-scheduler` is blanked;
 *   - identity: the root's `kube-root-ca.crt` is mounted as `master-root-ca.crt`; a projected
 *     service-account token becomes a secret source from `kosmos-<sa>-token` (the root SA's token,
 *     copied); `automountServiceAccountToken: false` so the leaf does not add its own;
 *   - admission-computed fields the leaf recomputes (`priority`, `preemptionPolicy`) are dropped.
 * Env is kept as written: ConfigMap/Secret references are satisfied by copying those objects into the
 * leaf, so Secret values are never inlined into the pod spec and `resourceFieldRef` keeps working
 * (upstream inlines them and drops resourceFieldRef: quirk 7, fixed).
 * A pod that cannot be converted gets an error naming the field (shown as an Event on the root pod).
 */
import {
  type Affinity,
  CLUSTER_SELECTOR_ANNOTATION,
  type Container,
  MASTER_ROOT_CA,
  type NodeSelectorTerm,
  POD_LABEL,
  type PodObject,
  type PodSpec,
  ROOT_CA,
  ROOT_UID_ANNOTATION,
  type Toleration,
  TRIPPED_ANNOTATION,
  type VirtualNodeRef,
  type Volume,
} from "./types.ts";

/** What the leaf pod needs copied first, by root names. */
export interface PodDeps {
  configMaps: string[];
  secrets: string[];
  /** Optional Secrets (image pull secrets, optional refs): copied when they exist. */
  optionalSecrets: string[];
  optionalConfigMaps: string[];
  serviceAccount: string;
  /** The pod mounts a projected SA token: the SA's token Secret must be copied. */
  token: boolean;
  /** PersistentVolumeClaims: copied into the leaf, where the leaf binds them (storage.ts). */
  pvcs: string[];
}

export type Converted =
  | { ok: true; pod: PodObject; deps: PodDeps }
  | { ok: false; field: string; message: string };

export const tokenSecretName = (sa: string): string => `kosmos-${sa}-token`;
/** Leaf name of a root ConfigMap (the root CA is renamed). */
export const leafConfigMapName = (n: string): string => (n === ROOT_CA ? MASTER_ROOT_CA : n);

interface ClusterSelector {
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  tolerations?: Toleration[];
  topologySpreadConstraints?: unknown[];
}

const clone = <T>(v: T): T => structuredClone(v);

function parseSelector(raw: string | undefined): ClusterSelector | { error: string } | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    if (!v || typeof v !== "object" || Array.isArray(v)) return { error: "not a JSON object" };
    return v as ClusterSelector;
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function partyTerm(ref: VirtualNodeRef): NodeSelectorTerm {
  const s = ref.selector ?? {};
  return {
    matchExpressions: [
      ...Object.entries(s.matchLabels ?? {})
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([key, v]) => ({ key, operator: "In", values: [v] })),
      ...(s.matchExpressions ?? []).map((e) => ({ ...e, values: e.values ? [...e.values] : undefined })),
    ],
  };
}

function placement(spec: PodSpec, ref: VirtualNodeRef, sel: ClusterSelector | undefined): void {
  const preferred = spec.affinity?.nodeAffinity?.preferredDuringSchedulingIgnoredDuringExecution;
  const affinity: Affinity = { ...(spec.affinity ?? {}) };
  delete affinity.nodeAffinity;
  if (preferred) affinity.nodeAffinity = { preferredDuringSchedulingIgnoredDuringExecution: preferred };
  if (sel) {
    spec.nodeSelector = sel.nodeSelector;
    spec.tolerations = sel.tolerations;
    spec.topologySpreadConstraints = sel.topologySpreadConstraints;
    const req = sel.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
    if (req)
      affinity.nodeAffinity = {
        ...(affinity.nodeAffinity ?? {}),
        requiredDuringSchedulingIgnoredDuringExecution: req,
      };
  } else {
    delete spec.nodeSelector;
    delete spec.tolerations;
    delete spec.topologySpreadConstraints;
  }
  if (ref.mode === "one2party") {
    affinity.nodeAffinity = {
      ...(affinity.nodeAffinity ?? {}),
      requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [partyTerm(ref)] },
    };
  }
  for (const k of ["nodeSelector", "tolerations", "topologySpreadConstraints"] as const)
    if (spec[k] === undefined) delete spec[k];
  if (Object.keys(affinity).length > 0) spec.affinity = affinity;
  else delete spec.affinity;
  if (ref.mode === "one2node" && ref.leafNode) spec.nodeName = ref.leafNode;
  else delete spec.nodeName;
  if (spec.schedulerName === "kosmos-scheduler") delete spec.schedulerName;
}

function collectEnv(containers: Container[], path: string, deps: PodDeps): void {
  containers.forEach((c) => {
    for (const e of c.env ?? []) {
      const cm = e.valueFrom?.configMapKeyRef;
      const sec = e.valueFrom?.secretKeyRef;
      if (cm?.name) (cm.optional ? deps.optionalConfigMaps : deps.configMaps).push(cm.name);
      if (sec?.name) (sec.optional ? deps.optionalSecrets : deps.secrets).push(sec.name);
    }
    for (const f of c.envFrom ?? []) {
      const cmRef = f.configMapRef as { name?: string; optional?: boolean } | undefined;
      const sRef = f.secretRef as { name?: string; optional?: boolean } | undefined;
      if (cmRef?.name) (cmRef.optional ? deps.optionalConfigMaps : deps.configMaps).push(cmRef.name);
      if (sRef?.name) (sRef.optional ? deps.optionalSecrets : deps.secrets).push(sRef.name);
    }
    void path;
  });
}

/** Rewrites volumes in place; returns an error naming the field of a volume that cannot go to a leaf. */
function volumes(spec: PodSpec, deps: PodDeps): { field: string; message: string } | undefined {
  const out: Volume[] = [];
  const dropped = new Set<string>();
  for (const [i, v] of (spec.volumes ?? []).entries()) {
    if (v.name.startsWith("default-token")) {
      dropped.add(v.name);
      continue;
    }
    if (v.persistentVolumeClaim) {
      if (!v.persistentVolumeClaim.claimName)
        return { field: `spec.volumes[${i}].persistentVolumeClaim.claimName`, message: "empty claim name" };
      deps.pvcs.push(v.persistentVolumeClaim.claimName);
    }
    if (v.configMap?.name) {
      const optional = v.configMap.optional === true;
      (optional ? deps.optionalConfigMaps : deps.configMaps).push(v.configMap.name);
      v.configMap.name = leafConfigMapName(v.configMap.name);
    }
    if (v.secret?.secretName) {
      (v.secret.optional === true ? deps.optionalSecrets : deps.secrets).push(v.secret.secretName);
    }
    if (v.projected) {
      const sources = [];
      for (const s of v.projected.sources ?? []) {
        if (s.serviceAccountToken) {
          deps.token = true;
          sources.push({
            secret: {
              name: tokenSecretName(deps.serviceAccount),
              items: [{ key: "token", path: s.serviceAccountToken.path }],
            },
          });
        } else if (s.configMap?.name) {
          (s.configMap.optional === true ? deps.optionalConfigMaps : deps.configMaps).push(s.configMap.name);
          sources.push({ configMap: { ...s.configMap, name: leafConfigMapName(s.configMap.name) } });
        } else if (s.secret?.name) {
          (s.secret.optional === true ? deps.optionalSecrets : deps.secrets).push(s.secret.name);
          sources.push({ secret: s.secret });
        } else if (s.downwardAPI) sources.push({ downwardAPI: s.downwardAPI });
        // other kinds (clusterTrustBundle, …) refer to root objects the leaf cannot see: dropped, as upstream
      }
      v.projected.sources = sources;
    }
    out.push(v);
  }
  if (spec.volumes) spec.volumes = out;
  if (dropped.size > 0) {
    for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
      if (c.volumeMounts) c.volumeMounts = c.volumeMounts.filter((m) => !dropped.has(m.name));
    }
  }
  return undefined;
}

const uniq = (a: string[]): string[] => [...new Set(a)].sort();

export function convertPod(root: PodObject, ref: VirtualNodeRef): Converted {
  const rawSel = root.metadata.annotations?.[CLUSTER_SELECTOR_ANNOTATION];
  const sel = parseSelector(rawSel);
  if (sel && "error" in sel)
    return {
      ok: false,
      field: `metadata.annotations[${CLUSTER_SELECTOR_ANNOTATION}]`,
      message: `not a valid cluster selector: ${sel.error}`,
    };
  const spec = clone(root.spec);
  const sa = spec.serviceAccountName || spec.serviceAccount || "default";
  const deps: PodDeps = {
    configMaps: [],
    secrets: [],
    optionalSecrets: [],
    optionalConfigMaps: [],
    serviceAccount: sa,
    token: false,
    pvcs: [],
  };
  placement(spec, ref, sel as ClusterSelector | undefined);
  const bad = volumes(spec, deps);
  if (bad) return { ok: false, ...bad };
  collectEnv(spec.containers ?? [], "spec.containers", deps);
  collectEnv(spec.initContainers ?? [], "spec.initContainers", deps);
  for (const s of spec.imagePullSecrets ?? []) deps.optionalSecrets.push(s.name);
  spec.serviceAccountName = sa;
  delete spec.serviceAccount;
  spec.automountServiceAccountToken = false;
  delete spec.priority;
  delete spec.preemptionPolicy;
  delete spec.ephemeralContainers;
  const labels = { ...(root.metadata.labels ?? {}), [POD_LABEL]: "true" };
  const annotations = {
    ...(root.metadata.annotations ?? {}),
    [TRIPPED_ANNOTATION]: "{}",
    ...(root.metadata.uid ? { [ROOT_UID_ANNOTATION]: root.metadata.uid } : {}),
  };
  const pod: PodObject = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: root.metadata.name, namespace: root.metadata.namespace, labels, annotations },
    spec,
  };
  return {
    ok: true,
    pod,
    deps: {
      ...deps,
      configMaps: uniq(deps.configMaps),
      secrets: uniq(deps.secrets),
      optionalSecrets: uniq(deps.optionalSecrets.filter((s) => !deps.secrets.includes(s))),
      optionalConfigMaps: uniq(deps.optionalConfigMaps.filter((s) => !deps.configMaps.includes(s))),
      pvcs: uniq(deps.pvcs),
    },
  };
}

/** A merge patch for a map: the wanted keys, and null for keys to remove. */
function mapPatch(
  want: Record<string, string>,
  have: Record<string, string> | undefined,
): Record<string, string | null> | undefined {
  const p: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(want)) if (have?.[k] !== v) p[k] = v;
  for (const k of Object.keys(have ?? {})) if (!(k in want)) p[k] = null;
  return Object.keys(p).length > 0 ? p : undefined;
}

/**
 * What of a changed root pod is carried to its existing leaf pod (upstream's limited update path):
 * container and init-container images, labels, annotations, activeDeadlineSeconds. A strategic merge
 * patch (containers by name), or undefined when the leaf pod already matches.
 */
export function leafPodPatch(want: PodObject, leaf: PodObject): Record<string, unknown> | undefined {
  const patch: { metadata?: Record<string, unknown>; spec?: Record<string, unknown> } = {};
  const labels = mapPatch(want.metadata.labels ?? {}, leaf.metadata.labels);
  const annotations = mapPatch(want.metadata.annotations ?? {}, leaf.metadata.annotations);
  if (labels || annotations)
    patch.metadata = { ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) };
  const spec: Record<string, unknown> = {};
  for (const key of ["containers", "initContainers"] as const) {
    const have = new Map((leaf.spec[key] ?? []).map((c) => [c.name, c.image]));
    const changed = (want.spec[key] ?? [])
      .filter((c) => have.has(c.name) && have.get(c.name) !== c.image)
      .map((c) => ({ name: c.name, image: c.image }));
    if (changed.length > 0) spec[key] = changed;
  }
  if (
    want.spec.activeDeadlineSeconds !== leaf.spec.activeDeadlineSeconds &&
    want.spec.activeDeadlineSeconds !== undefined
  )
    spec.activeDeadlineSeconds = want.spec.activeDeadlineSeconds;
  if (Object.keys(spec).length > 0) patch.spec = spec;
  return patch.metadata || patch.spec ? patch : undefined;
}
