/**
 * The bash script that sets up a container's mounts inside its private mount namespace (pure).
 * Each volume's directory is bind-mounted on its mountPath. A mountPath that does not exist on the
 * host is never created there: the nearest existing ancestor is covered with an overlay whose upper
 * layer lives on a private tmpfs, the missing directories are made in that overlay, and the volume
 * is bound on top. Sources and layers are opened (file descriptors) before any overlay is mounted,
 * so an overlay of, say, /run cannot hide the pod's own directory under it; the root itself is never
 * overlaid. Read-only mounts are remounted read-only. The script then sets the hostname, changes to
 * the working directory and execs the program (`"$@"`).
 */
import { KosmosError } from "../errors/index.ts";

export interface MountStep {
  /** The volume's directory (or a hostPath) on the host. */
  source: string;
  mountPath: string;
  readOnly: boolean;
  /** The deepest existing ancestor of mountPath when mountPath itself is missing. */
  missingUnder?: string;
  /** The source is a file (a file hostPath): a missing mountPath is made as an empty file. */
  file?: boolean;
}

export interface MountScriptInput {
  mounts: MountStep[];
  /** Where the private tmpfs for overlay layers is mounted (the container's own directory). */
  overlayDir: string;
  hostname?: string;
  workingDir?: string;
}

/** Reported on the container as the kubelet's reason `CreateContainerError` (the code). */
export class MountPlanError extends KosmosError<"CreateContainerError"> {
  constructor(message: string) {
    super("CreateContainerError", message);
  }
}

/** POSIX shell single-quoting. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A stable, path-safe directory name for an overlay over `dir`. */
function layerName(dir: string): string {
  return dir.replace(/^\//, "").replace(/[^A-Za-z0-9._-]/g, "_");
}

const FD0 = 10;
const LAYERS_FD = 9;

export function mountScript(i: MountScriptInput): string {
  const lines = ["set -e"];
  // Shallower mountPaths first, so a volume mounted inside another one's mountPath stays visible.
  const mounts = [...i.mounts].sort((a, b) => a.mountPath.split("/").length - b.mountPath.split("/").length);
  const under = [...new Set(mounts.flatMap((m) => (m.missingUnder !== undefined ? [m.missingUnder] : [])))];
  under.sort((a, b) => a.split("/").length - b.split("/").length);
  for (const u of under)
    if (u === "/")
      throw new MountPlanError(
        `a mountPath directly under / that does not exist on this host (${mounts.find((m) => m.missingUnder === "/")?.mountPath}): the lab never overlays the root`,
      );
  if (under.length > 0)
    lines.push(
      `mkdir -p ${shq(i.overlayDir)}`,
      `mount -t tmpfs -o mode=0700 kosmos-layers ${shq(i.overlayDir)}`,
      `exec ${LAYERS_FD}<${shq(i.overlayDir)}`,
    );
  for (const [k, m] of mounts.entries()) lines.push(`exec ${FD0 + k}<${shq(m.source)}`);
  const layers = `/proc/self/fd/${LAYERS_FD}`;
  for (const u of under) {
    const l = `${layers}/${layerName(u)}`;
    lines.push(
      `mkdir -p ${l}/upper ${l}/work`,
      `mount -t overlay overlay -o ${shq(`lowerdir=${u},upperdir=${l}/upper,workdir=${l}/work`)} ${shq(u)}`,
    );
  }
  mounts.forEach((m, k) => {
    const dst = shq(m.mountPath);
    if (m.missingUnder !== undefined && m.file) lines.push(`mkdir -p "$(dirname ${dst})"`, `touch ${dst}`);
    else if (m.missingUnder !== undefined) lines.push(`mkdir -p ${dst}`);
    // --no-canonicalize: mount(8) would resolve the fd to its path, which an overlay may now hide.
    lines.push(`mount --no-canonicalize --bind /proc/self/fd/${FD0 + k} ${dst}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${dst}`);
  });
  const fds = [...(under.length > 0 ? [LAYERS_FD] : []), ...mounts.map((_, k) => FD0 + k)];
  if (fds.length > 0) lines.push(`exec ${fds.map((f) => `${f}<&-`).join(" ")}`);
  if (i.hostname) lines.push(`hostname ${shq(i.hostname)}`);
  if (i.workingDir) lines.push(`cd ${shq(i.workingDir)}`);
  lines.push('exec "$@"');
  return lines.join("\n");
}
