/**
 * A pod's directory on the node (side effects): `<root>/pods/<uid>/` holds its volumes' files
 * (`volumes/<name>/`), the overlay layers for missing mountPaths (`overlays/`) and its containers'
 * logs (`logs/<container>/<restartCount>.log`). hostPath volumes are the node's own directories
 * under `<root>/host/` (every lab node has its own `/var/lib/kosmos`), except read-only system trees
 * (`/lib/modules`, `/sys`, `/proc`, `/dev`, `/usr`), which are the machine's.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { MountStep } from "./mounts.ts";
import type { ContainerPlan } from "./podplan.ts";
import type { PlannedVolume } from "./volumes.ts";

const SHARED_HOST_TREES = ["/lib/modules", "/sys", "/proc", "/dev", "/usr"];

export const podDir = (root: string, uid: string): string => join(root, "pods", uid);

export function logFile(root: string, uid: string, container: string, restartCount: number): string {
  return join(podDir(root, uid), "logs", container, `${restartCount}.log`);
}

/** The host path a hostPath volume stands for on this lab node. */
export function hostPathSource(root: string, path: string): string {
  if (SHARED_HOST_TREES.some((t) => path === t || path.startsWith(`${t}/`))) return path;
  return join(root, "host", path);
}

/** Write every volume of the pod; returns volume name → (directory or file, isFile). */
export function writeVolumes(
  root: string,
  uid: string,
  volumes: PlannedVolume[],
  hostPathTypes: Record<string, string | undefined>,
): Map<string, { path: string; file: boolean }> {
  const out = new Map<string, { path: string; file: boolean }>();
  for (const v of volumes) {
    if (v.kind === "hostPath") {
      const src = hostPathSource(root, v.path);
      const type = hostPathTypes[v.name] ?? "";
      const wantsFile = type === "FileOrCreate" || type === "File";
      if (!existsSync(src)) {
        if (wantsFile) {
          mkdirSync(dirname(src), { recursive: true });
          writeFileSync(src, "");
        } else mkdirSync(src, { recursive: true });
      }
      out.set(v.name, { path: src, file: !statSync(src).isDirectory() });
      continue;
    }
    const dir = join(podDir(root, uid), "volumes", v.name);
    mkdirSync(dir, { recursive: true });
    if (v.kind === "files") {
      for (const f of v.files) {
        const p = join(dir, f.path);
        mkdirSync(dirname(p), { recursive: true });
        writeFileSync(p, f.content);
        chmodSync(p, f.mode);
      }
    }
    out.set(v.name, { path: dir, file: false });
  }
  return out;
}

/** The deepest existing ancestor of a missing path (undefined when the path exists). */
export function missingUnder(path: string): string | undefined {
  if (existsSync(path)) return undefined;
  let p = dirname(path);
  while (!existsSync(p)) p = dirname(p);
  return p;
}

export function mountSteps(
  c: ContainerPlan,
  sources: Map<string, { path: string; file: boolean }>,
): MountStep[] {
  return c.mounts.map((m) => {
    const src = sources.get(m.volume)!;
    const under = missingUnder(m.mountPath);
    return {
      source: src.path,
      mountPath: m.mountPath,
      readOnly: m.readOnly,
      ...(under !== undefined ? { missingUnder: under } : {}),
      ...(src.file ? { file: true } : {}),
    };
  });
}

export function removePodDir(root: string, uid: string): void {
  rmSync(podDir(root, uid), { recursive: true, force: true });
}
