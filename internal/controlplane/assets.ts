/**
 * Finding the Kubernetes control-plane binaries the envtest way: the directory named by
 * `KUBEBUILDER_ASSETS` holds `kube-apiserver`, `kube-controller-manager`, `kube-scheduler`; `etcd` is
 * taken from that directory or from `PATH`. Nothing else is searched, so a user with their own binaries
 * (kubebuilder's setup-envtest, a distro package) points the variable at them.
 */
import { KosmosError } from "../errors/index.ts";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";

export type Binary = "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "etcd";

export class AssetsMissingError extends KosmosError<"KOSMOS_KUBE_ASSETS_MISSING"> {
  override name = "AssetsMissingError";
  constructor(message: string, hint: string) {
    super("KOSMOS_KUBE_ASSETS_MISSING", message, hint);
  }
}

export interface Assets {
  dir: string;
  path(b: Binary): string;
}

const HINT =
  "set KUBEBUILDER_ASSETS to a directory with kube-apiserver, kube-controller-manager and kube-scheduler " +
  "(in this repository: `bash scripts/kube-assets` unpacks ../shared/k8s and prints the export line; " +
  "elsewhere: `setup-envtest use -p path 1.28.x`), and install etcd (Debian: apt-get install etcd-server)";

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const dir of (env.PATH ?? "").split(":").filter(Boolean)) {
    const p = join(dir, name);
    if (executable(p)) return p;
  }
  return undefined;
}

/** Why the assets cannot be used, or undefined when they can. */
export function assetsProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    findAssets(env);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** The binaries, or an AssetsMissingError naming exactly what is missing and how to get it. */
export function findAssets(env: NodeJS.ProcessEnv = process.env): Assets {
  const dir = env.KUBEBUILDER_ASSETS;
  if (!dir) throw new AssetsMissingError("KUBEBUILDER_ASSETS is not set: no Kubernetes control plane", HINT);
  const paths = new Map<Binary, string>();
  const missing: string[] = [];
  for (const b of ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] as const) {
    const p = join(dir, b);
    if (executable(p)) paths.set(b, p);
    else missing.push(p);
  }
  const etcd = executable(join(dir, "etcd")) ? join(dir, "etcd") : onPath("etcd", env);
  if (etcd) paths.set("etcd", etcd);
  else missing.push(`etcd (neither ${join(dir, "etcd")} nor on PATH)`);
  if (missing.length > 0)
    throw new AssetsMissingError(`Kubernetes control-plane binaries missing: ${missing.join(", ")}`, HINT);
  return { dir, path: (b) => paths.get(b)! };
}
