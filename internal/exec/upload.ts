/**
 * Uploads confined to configured roots and written atomically: data goes to a temp file in the
 * target directory, is fsynced, optionally checksum-verified, then renamed over the target. An
 * existing target is first hard-linked to `<file>_<timestamp>_bak` (upstream's backup name), so
 * the original stays in place until the new content is complete.
 */
import { createHash, randomBytes } from "node:crypto";
import { type FileHandle, link, lstat, mkdir, open, realpath, rename, rm } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve, sep } from "node:path";
import { ExecError } from "./errors.ts";

async function realpathOfNearest(path: string): Promise<string> {
  let cur = path;
  const rest: string[] = [];
  for (;;) {
    try {
      const real = await realpath(cur);
      return rest.length ? join(real, ...rest.reverse()) : real;
    } catch {
      const parent = dirname(cur);
      if (parent === cur) return path;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}

function within(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

/**
 * Resolve `dir/name` against the roots; throws PATH_OUTSIDE_ROOTS when it (or, via symlinks, its
 * real location) is not inside one of them. Returns the absolute target path.
 */
export async function confinePath(roots: string[], dir: string, name?: string): Promise<string> {
  if (
    name !== undefined &&
    (name === "" || name === "." || name === ".." || name.includes("/") || name.includes("\0"))
  )
    throw new ExecError(
      "BAD_REQUEST",
      `invalid file name ${JSON.stringify(name)}`,
      "file_name must be a plain name",
    );
  if (!isAbsolute(dir) || dir.includes("\0"))
    throw new ExecError(
      "BAD_REQUEST",
      `path must be absolute: ${JSON.stringify(dir)}`,
      "use an absolute path",
    );
  const target = resolve(dir, name ?? "");
  const realTarget = await realpathOfNearest(target);
  for (const r of roots) {
    const root = resolve(r);
    const realRoot = await realpathOfNearest(root);
    if (within(target, root) && within(realTarget, realRoot) && target !== root) return target;
  }
  throw new ExecError(
    "PATH_OUTSIDE_ROOTS",
    `${target} is outside the allowed upload roots`,
    `allowed roots: ${roots.join(", ") || "(none configured)"}`,
  );
}

/** upstream: time.Now().Format("2006-01-02-150405000") → e.g. 2024-05-01-134501000 */
export function backupName(file: string, now: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  const ts = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}000`;
  return `${file}_${ts}_bak`;
}

export interface UploadResult {
  path: string;
  bytes: number;
  sha256: string;
  backup: string | null;
}

/** Incremental atomic writer; call `write` per chunk, then `commit` or `abort`. */
export class AtomicUpload {
  private fh: FileHandle | null = null;
  private readonly hash = createHash("sha256");
  private bytes = 0;
  private readonly tmp: string;
  private pending: Promise<unknown> = Promise.resolve();
  private failed: Error | null = null;

  private constructor(
    readonly target: string,
    private readonly maxBytes: number,
    private readonly mode: number,
  ) {
    this.tmp = join(dirname(target), `.${basename(target)}.kosmos-${randomBytes(6).toString("hex")}.tmp`);
  }

  static async open(target: string, opts: { maxBytes?: number; mode?: number } = {}): Promise<AtomicUpload> {
    const u = new AtomicUpload(target, opts.maxBytes ?? Number.POSITIVE_INFINITY, opts.mode ?? 0o644);
    try {
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      u.fh = await open(u.tmp, "wx", u.mode);
    } catch (err) {
      throw new ExecError(
        "UPLOAD_FAILED",
        `cannot create ${u.tmp}: ${(err as Error).message}`,
        "check the directory",
      );
    }
    return u;
  }

  get size(): number {
    return this.bytes;
  }

  /** Queue a chunk (ordered); errors surface in `commit`. Returns a promise for backpressure. */
  write(chunk: Uint8Array): Promise<unknown> {
    this.bytes += chunk.byteLength;
    if (this.bytes > this.maxBytes && !this.failed) {
      this.failed = new ExecError(
        "UPLOAD_TOO_LARGE",
        `upload exceeds ${this.maxBytes} bytes`,
        "raise limits.maxUploadBytes on the agent",
      );
    }
    if (this.failed) return this.pending;
    this.hash.update(chunk);
    const fh = this.fh;
    this.pending = this.pending.then(async () => {
      if (!fh || this.failed) return;
      let off = 0;
      while (off < chunk.byteLength) {
        const { bytesWritten } = await fh.write(chunk, off, chunk.byteLength - off);
        off += bytesWritten;
      }
    });
    this.pending.catch((err: Error) => {
      this.failed ??= new ExecError("UPLOAD_FAILED", `write failed: ${err.message}`, "check free disk space");
    });
    return this.pending;
  }

  async commit(expectSha256?: string, now: Date = new Date()): Promise<UploadResult> {
    await this.pending.catch(() => {});
    if (this.failed) {
      await this.abort();
      throw this.failed;
    }
    const sum = this.hash.digest("hex");
    if (expectSha256 && expectSha256.toLowerCase() !== sum) {
      await this.abort();
      throw new ExecError(
        "CHECKSUM_MISMATCH",
        `sha256 mismatch: got ${sum}, expected ${expectSha256}`,
        "re-send the file",
      );
    }
    try {
      await this.fh?.sync();
      await this.fh?.close();
      this.fh = null;
      let backup: string | null = null;
      const st = await lstat(this.target).catch(() => null);
      if (st?.isFile()) {
        backup = backupName(this.target, now);
        await rm(backup, { force: true });
        await link(this.target, backup);
      }
      await rename(this.tmp, this.target);
      return { path: this.target, bytes: this.bytes, sha256: sum, backup };
    } catch (err) {
      await this.abort();
      throw new ExecError(
        "UPLOAD_FAILED",
        `cannot install ${this.target}: ${(err as Error).message}`,
        "check the target",
      );
    }
  }

  async abort(): Promise<void> {
    await this.fh?.close().catch(() => {});
    this.fh = null;
    await rm(this.tmp, { force: true });
  }
}
