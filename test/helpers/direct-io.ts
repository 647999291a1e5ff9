/**
 * A directory where O_DIRECT really works, for the upload writer's tests. CI machines often have
 * /tmp on tmpfs, which refuses O_DIRECT (EINVAL at open): the repository's own tmp/ (gitignored,
 * on the checkout's disk) is tried next. When neither works the tests say they are skipped, and why.
 */
import { constants } from "node:fs";
import { mkdir, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** O_DIRECT in the `flags` line of /proc/self/fdinfo (octal). */
export async function fdHasODirect(fd: number): Promise<boolean> {
  const info = await readFile(`/proc/self/fdinfo/${fd}`, "utf8");
  const m = /^flags:\s+([0-7]+)$/m.exec(info);
  return m !== null && (Number.parseInt(m[1] as string, 8) & constants.O_DIRECT) !== 0;
}

/** Whether a 4 KiB O_DIRECT write works in `dir` (the way StagedFileWriter reopens its file). */
async function directIoWorks(dir: string): Promise<boolean> {
  const path = join(dir, `.odirect-probe-${process.pid}`);
  try {
    await mkdir(dir, { recursive: true });
    const fh = await open(path, "wx");
    try {
      const d = await open(`/proc/self/fd/${fh.fd}`, constants.O_WRONLY | constants.O_DIRECT);
      try {
        await d.write(Buffer.alloc(1 << 21), 0, 4096, 0);
        return await fdHasODirect(d.fd);
      } finally {
        await d.close();
      }
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  } finally {
    await rm(path, { force: true });
  }
}

export interface DirectIoPlace {
  /** parent directory for per-test temp dirs, or null when no candidate supports O_DIRECT */
  parent: string | null;
  /** why the O_DIRECT tests are skipped (when parent is null) */
  reason: string;
}

const REPO_TMP = join(import.meta.dir, "..", "..", "tmp");

/** The first of tmpdir() and <repo>/tmp where O_DIRECT works. */
export async function findDirectIoPlace(): Promise<DirectIoPlace> {
  const tried: string[] = [];
  for (const dir of [tmpdir(), REPO_TMP]) {
    if (await directIoWorks(dir)) return { parent: dir, reason: "" };
    tried.push(dir);
  }
  return {
    parent: null,
    reason: `O_DIRECT is refused in ${tried.join(" and ")} (tmpfs or a FUSE filesystem?)`,
  };
}

/** A fresh directory under `parent` (remove it with rm -r). */
export function tempDirIn(parent: string, prefix: string): Promise<string> {
  return mkdtemp(join(parent, prefix));
}
