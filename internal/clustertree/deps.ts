/**
 * Copies of root ConfigMaps, Secrets and ServiceAccount tokens in a leaf (clustertree.md §1.14,
 * §1.11). A copy carries `kosmos.io/global=true` (upstream) and the label `kosmos.io/synced=true`
 * (ours, so the copies can be watched); an object of the same name without them is the leaf's own and
 * is never overwritten — the pod that needs it gets an Event instead. A copy no pod needs any more is
 * deleted (garbage collection, which upstream does not do).
 */
import { canonical } from "../controller/index.ts";
import { KosmosError } from "../errors/index.ts";
import { isConflict, type KubeClient } from "../kube/index.ts";
import { leafConfigMapName, tokenSecretName } from "./convert.ts";
import {
  type DataObject,
  GLOBAL_ANNOTATION,
  MASTER_ROOT_CA,
  type PodSpec,
  ROOT_CA,
  SYNCED_LABEL,
} from "./types.ts";

export type CopyKind = "configmaps" | "secrets";

/** Root name of a leaf copy (the CA ConfigMap was renamed). */
export const rootNameOf = (kind: CopyKind, leafName: string): string =>
  kind === "configmaps" && leafName === MASTER_ROOT_CA ? ROOT_CA : leafName;

export const isCopy = (o: DataObject | undefined): boolean => o?.metadata.labels?.[SYNCED_LABEL] === "true";

/** The leaf copy of a root object (pure). ServiceAccount token Secrets become Opaque in the leaf. */
export function leafCopy(kind: CopyKind, root: DataObject): DataObject {
  const name = kind === "configmaps" ? leafConfigMapName(root.metadata.name) : root.metadata.name;
  const out: DataObject = {
    apiVersion: "v1",
    kind: kind === "configmaps" ? "ConfigMap" : "Secret",
    metadata: {
      name,
      namespace: root.metadata.namespace,
      labels: { ...(root.metadata.labels ?? {}), [SYNCED_LABEL]: "true" },
      annotations: { [GLOBAL_ANNOTATION]: "true" },
    },
  };
  if (root.data) out.data = root.data;
  if (root.binaryData) out.binaryData = root.binaryData;
  if (kind === "secrets") {
    // A leaf's token controller rejects or rewrites service-account-token Secrets of SAs it does not
    // know; as Opaque the root token is carried untouched (upstream does this for `default` only).
    out.type = root.type === "kubernetes.io/service-account-token" ? "Opaque" : (root.type ?? "Opaque");
    if (root.type === "kubernetes.io/service-account-token")
      out.metadata.annotations!["kosmos.io/service-account.name"] =
        root.metadata.annotations?.["kubernetes.io/service-account.name"] ?? "";
  }
  return out;
}

const sameCopy = (a: DataObject, b: DataObject): boolean =>
  canonical([a.metadata.labels, a.data ?? {}, a.binaryData ?? {}, a.type]) ===
  canonical([b.metadata.labels, b.data ?? {}, b.binaryData ?? {}, b.type]);

export class ClashError extends KosmosError<"KOSMOS_TREE_CLASH"> {
  constructor(message: string) {
    super(
      "KOSMOS_TREE_CLASH",
      message,
      "rename the object in the leaf, or remove it if nothing there uses it",
    );
  }
}

/** Create or update a leaf copy; `have` is the informer's view (may be stale: a 409 reads again). */
export async function upsertCopy(
  leaf: KubeClient,
  kind: CopyKind,
  want: DataObject,
  have: DataObject | undefined,
): Promise<void> {
  const ns = want.metadata.namespace!;
  const base = `/api/v1/namespaces/${ns}/${kind}`;
  const path = `${base}/${encodeURIComponent(want.metadata.name)}`;
  let cur = have;
  if (!cur) {
    try {
      await leaf.create(base, want);
      return;
    } catch (e) {
      if (!isConflict(e)) throw e;
      cur = await leaf.get<DataObject>(path);
    }
  }
  if (!isCopy(cur))
    throw new ClashError(
      `${kind === "configmaps" ? "ConfigMap" : "Secret"} ${ns}/${want.metadata.name} exists in the leaf and is not a Kosmos copy`,
    );
  if (sameCopy(cur, want)) return;
  await leaf.replace(path, {
    ...want,
    metadata: { ...want.metadata, resourceVersion: cur.metadata.resourceVersion },
  });
}

/** Every ConfigMap/Secret a leaf pod spec refers to, by leaf name. */
export function leafRefs(spec: PodSpec): { configmaps: Set<string>; secrets: Set<string> } {
  const configmaps = new Set<string>();
  const secrets = new Set<string>();
  for (const v of spec.volumes ?? []) {
    if (v.configMap?.name) configmaps.add(v.configMap.name);
    if (v.secret?.secretName) secrets.add(v.secret.secretName);
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap?.name) configmaps.add(s.configMap.name);
      if (s.secret?.name) secrets.add(s.secret.name);
    }
  }
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
    for (const e of c.env ?? []) {
      if (e.valueFrom?.configMapKeyRef?.name) configmaps.add(e.valueFrom.configMapKeyRef.name);
      if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
    }
    for (const f of c.envFrom ?? []) {
      if (f.configMapRef?.name) configmaps.add(f.configMapRef.name);
      if (f.secretRef?.name) secrets.add(f.secretRef.name);
    }
  }
  for (const s of spec.imagePullSecrets ?? []) secrets.add(s.name);
  return { configmaps, secrets };
}

/** The root Secret holding a ServiceAccount's token, as upstream makes it (the root fills it). */
export function tokenSecret(ns: string, sa: string): DataObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "kubernetes.io/service-account-token",
    metadata: {
      name: tokenSecretName(sa),
      namespace: ns,
      annotations: { "kubernetes.io/service-account.name": sa },
      labels: { "kosmos.io/token-for": sa },
    },
  };
}
