/**
 * A pod's volumes as the files the kubelet writes into the pod's directory (pure): ConfigMap, Secret,
 * projected (ServiceAccount token, ConfigMap, Secret, downward API), downwardAPI, emptyDir; hostPath
 * is the node's own directory (in the lab every node has its own root, so two nodes never share
 * `/var/lib/kosmos`). `items` select and rename keys; `defaultMode`/`mode` set permissions; a missing
 * source that is not optional is an error naming it, as the kubelet's FailedMount.
 */
import { KosmosError } from "../errors/index.ts";
import { type EnvLookups, formatMap, fieldValue, type PodFacts } from "./env.ts";

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

export interface VolumeSpec {
  name: string;
  configMap?: { name: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number; optional?: boolean };
  emptyDir?: Record<string, unknown>;
  hostPath?: { path: string; type?: string };
  downwardAPI?: { items?: DownwardItem[]; defaultMode?: number };
  projected?: { sources?: ProjectedSource[]; defaultMode?: number };
}

export interface DownwardItem {
  path: string;
  fieldRef?: { fieldPath: string };
  resourceFieldRef?: { resource: string };
  mode?: number;
}

export interface ProjectedSource {
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items?: DownwardItem[] };
  serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number };
}

export interface FileToWrite {
  /** Path inside the volume. */
  path: string;
  content: string;
  mode: number;
}

/** Where a volume's contents come from once planned. */
export type PlannedVolume =
  | { name: string; kind: "files"; files: FileToWrite[] }
  | { name: string; kind: "emptyDir" }
  | { name: string; kind: "hostPath"; path: string };

export interface VolumeLookups extends EnvLookups {
  /** A token for the pod's ServiceAccount (TokenRequest bound to the pod). */
  token(audience: string | undefined, expirationSeconds: number): string | undefined;
}

/** code: the kubelet's event reason (FailedMount). */
export class MountError extends KosmosError<"FailedMount"> {
  override name = "MountError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("FailedMount", message, "", options);
  }
}

function keyFiles(
  kind: "configmap" | "secret",
  name: string,
  data: Record<string, string> | undefined,
  items: KeyToPath[] | undefined,
  mode: number,
  optional: boolean | undefined,
): FileToWrite[] {
  if (!data) {
    if (optional) return [];
    throw new MountError(`${kind} "${name}" not found`);
  }
  if (!items) return Object.entries(data).map(([k, v]) => ({ path: k, content: v, mode }));
  return items.map((i) => {
    const v = data[i.key];
    if (v === undefined) throw new MountError(`${kind} "${name}" has no key ${i.key}`);
    return { path: i.path, content: v, mode: i.mode ?? mode };
  });
}

function downwardFiles(items: DownwardItem[] | undefined, pod: PodFacts, mode: number): FileToWrite[] {
  return (items ?? []).map((i) => ({
    path: i.path,
    content: i.fieldRef
      ? fieldValue(pod, i.fieldRef.fieldPath)
      : (pod.resources[i.resourceFieldRef?.resource ?? ""] ?? "0"),
    mode: i.mode ?? mode,
  }));
}

function projectedFiles(
  v: NonNullable<VolumeSpec["projected"]>,
  pod: PodFacts,
  look: VolumeLookups,
): FileToWrite[] {
  const mode = v.defaultMode ?? 0o644;
  const out: FileToWrite[] = [];
  for (const s of v.sources ?? []) {
    const ref = s.configMap
      ? { kind: "configmap" as const, ...s.configMap, data: look.configMap(s.configMap.name)?.data }
      : s.secret
        ? { kind: "secret" as const, ...s.secret, data: look.secret(s.secret.name)?.data }
        : undefined;
    if (ref) out.push(...keyFiles(ref.kind, ref.name, ref.data, ref.items, mode, ref.optional));
    if (s.downwardAPI) out.push(...downwardFiles(s.downwardAPI.items, pod, mode));
    if (s.serviceAccountToken) {
      const t = look.token(s.serviceAccountToken.audience, s.serviceAccountToken.expirationSeconds ?? 3607);
      if (t === undefined) throw new MountError(`no token for service account ${pod.serviceAccountName}`);
      out.push({ path: s.serviceAccountToken.path, content: t, mode });
    }
  }
  return out;
}

/** Plan one volume. Paths are checked: no absolute paths and no `..` (a hostile spec stays inside). */
export function planVolume(v: VolumeSpec, pod: PodFacts, look: VolumeLookups): PlannedVolume {
  let files: FileToWrite[];
  if (v.emptyDir) return { name: v.name, kind: "emptyDir" };
  if (v.hostPath) return { name: v.name, kind: "hostPath", path: v.hostPath.path };
  const src = v.configMap
    ? { kind: "configmap" as const, ...v.configMap, data: look.configMap(v.configMap.name)?.data }
    : v.secret
      ? {
          kind: "secret" as const,
          ...v.secret,
          name: v.secret.secretName,
          data: look.secret(v.secret.secretName)?.data,
        }
      : undefined;
  if (src) files = keyFiles(src.kind, src.name, src.data, src.items, src.defaultMode ?? 0o644, src.optional);
  else if (v.downwardAPI) files = downwardFiles(v.downwardAPI.items, pod, v.downwardAPI.defaultMode ?? 0o644);
  else if (v.projected) files = projectedFiles(v.projected, pod, look);
  else
    throw new MountError(
      `volume ${v.name}: unsupported volume type (${Object.keys(v)
        .filter((k) => k !== "name")
        .join(", ")})`,
    );
  for (const f of files) {
    if (f.path.startsWith("/") || f.path.split("/").includes(".."))
      throw new MountError(
        `volume ${v.name}: path ${JSON.stringify(f.path)} must be relative and stay inside the volume`,
      );
  }
  return { name: v.name, kind: "files", files };
}

export { formatMap };
