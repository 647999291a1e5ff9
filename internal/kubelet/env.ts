/**
 * A container's environment, resolved as the kubelet does (pure): `env` in order with `$(VAR)`
 * expansion against what came before (`$$` escapes), `envFrom` ConfigMaps/Secrets with their prefix,
 * the downward API (`fieldRef`, `resourceFieldRef`), and ConfigMap/Secret key references; a missing
 * required reference is an error that names the variable, as the kubelet's CreateContainerConfigError.
 */
import { KosmosError } from "../errors/index.ts";

export interface KeyValueSource {
  data?: Record<string, string>;
}

export interface EnvVarSpec {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    resourceFieldRef?: { resource: string; divisor?: string };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    secretKeyRef?: { name: string; key: string; optional?: boolean };
  };
}

export interface EnvFromSpec {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string; optional?: boolean };
}

/** What the downward API can read of the pod. */
export interface PodFacts {
  name: string;
  namespace: string;
  uid: string;
  nodeName: string;
  serviceAccountName: string;
  hostIP: string;
  podIPs: string[];
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Container resources: `limits.cpu`, `requests.memory`, … as quantities. */
  resources: Record<string, string>;
}

export interface EnvLookups {
  configMap(name: string): KeyValueSource | undefined;
  /** Secret data already decoded from base64. */
  secret(name: string): KeyValueSource | undefined;
}

/** code: the kubelet's waiting reason (CreateContainerConfigError). */
export class EnvError extends KosmosError<"CreateContainerConfigError"> {
  override name = "EnvError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("CreateContainerConfigError", message, "", options);
  }
}

/** `metadata.labels['app']` → the label; the paths the kubelet supports. */
export function fieldValue(p: PodFacts, path: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === "labels" ? p.labels : p.annotations)[m[2]!] ?? "";
  switch (path) {
    case "metadata.name":
      return p.name;
    case "metadata.namespace":
      return p.namespace;
    case "metadata.uid":
      return p.uid;
    case "spec.nodeName":
      return p.nodeName;
    case "spec.serviceAccountName":
      return p.serviceAccountName;
    case "status.hostIP":
      return p.hostIP;
    case "status.hostIPs":
      return p.hostIP;
    case "status.podIP":
      return p.podIPs[0] ?? "";
    case "status.podIPs":
      return p.podIPs.join(",");
    case "metadata.labels":
      return formatMap(p.labels);
    case "metadata.annotations":
      return formatMap(p.annotations);
    default:
      throw new EnvError(`unsupported fieldRef ${path}`);
  }
}

/** The downward API's `key="value"` lines (sorted), as in a downwardAPI volume file. */
export function formatMap(m: Record<string, string>): string {
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${JSON.stringify(m[k])}`)
    .join("\n");
}

/** `$(VAR)` expansion with Kubernetes' rules: unknown references stay as written, `$$` is a `$`. */
export function expand(s: string, vars: Map<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (whole, name: string | undefined) => {
    if (whole === "$$") return "$";
    return vars.has(name!) ? vars.get(name!)! : whole;
  });
}

function keyRef(
  kind: "ConfigMap" | "Secret",
  src: KeyValueSource | undefined,
  ref: { name: string; key: string; optional?: boolean },
  variable: string,
): string | undefined {
  const v = src?.data?.[ref.key];
  if (v !== undefined) return v;
  if (ref.optional) return undefined;
  throw new EnvError(
    src
      ? `couldn't find key ${ref.key} in ${kind} ${ref.name} (env ${variable})`
      : `${kind.toLowerCase()} "${ref.name}" not found (env ${variable})`,
  );
}

/** The resolved environment, in the order the kubelet builds it (envFrom first, then env). */
export function resolveEnv(
  c: { env?: EnvVarSpec[]; envFrom?: EnvFromSpec[] },
  pod: PodFacts,
  look: EnvLookups,
): Map<string, string> {
  const vars = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const kind = from.configMapRef ? "ConfigMap" : "Secret";
    const src = from.configMapRef ? look.configMap(ref.name) : look.secret(ref.name);
    if (!src) {
      if (ref.optional) continue;
      throw new EnvError(`${kind.toLowerCase()} "${ref.name}" not found (envFrom)`);
    }
    for (const [k, v] of Object.entries(src.data ?? {})) vars.set(`${from.prefix ?? ""}${k}`, v);
  }
  for (const e of c.env ?? []) {
    const vf = e.valueFrom;
    let v: string | undefined;
    if (!vf) v = expand(e.value ?? "", vars);
    else if (vf.fieldRef) v = fieldValue(pod, vf.fieldRef.fieldPath);
    else if (vf.resourceFieldRef) v = pod.resources[vf.resourceFieldRef.resource] ?? "0";
    else if (vf.configMapKeyRef)
      v = keyRef("ConfigMap", look.configMap(vf.configMapKeyRef.name), vf.configMapKeyRef, e.name);
    else if (vf.secretKeyRef)
      v = keyRef("Secret", look.secret(vf.secretKeyRef.name), vf.secretKeyRef, e.name);
    if (v !== undefined) vars.set(e.name, v);
  }
  return vars;
}
