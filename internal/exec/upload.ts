/**
 * Uploads confined to configured roots and written atomically: data goes to a temp file in the
 * target directory, is fsynced, optionally checksum-verified, then renamed over the target. An
 * existing target is first hard-linked to `<file>_<timestamp>_bak` (upstream's backup name), so
 * the original stays in place until the new content is complete.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, link, lstat, mkdir, open, realpath, rename, rm } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, resolve, sep } from "node:path";
import {
  type Checksum,
  type ChecksumAlgorithm,
  type ChecksumSpec,
  newChecksum,
  sameHex,
  trailerBytes,
} from "./checksum.ts";
import { ExecError } from "./errors.ts";
import { StagedFileWriter } from "./filewriter.ts";

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

/**
 * `<file>_<YYYY-MM-DD-HHMMSSmmm>_bak`: upstream's name (Go layout "2006-01-02-150405000", whose
 * last three digits are a literal 000) with the milliseconds in those digits, so two commits in
 * the same second do not want the same name.
 */
export function backupName(file: string, now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const ts = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}${p(now.getMilliseconds(), 3)}`;
  return `${file}_${ts}_bak`;
}

/** Install steps in progress per target path: commits to one path run one after the other. */
const installing = new Map<string, Promise<unknown>>();

/** Run `fn` once every earlier install of `target` (in this process) has finished. */
async function withInstallLock<T>(target: string, fn: () => Promise<T>): Promise<T> {
  const before = installing.get(target) ?? Promise.resolve();
  const mine = before.then(fn, fn);
  const settled = mine.catch(() => undefined);
  installing.set(target, settled);
  try {
    return await mine;
  } finally {
    if (installing.get(target) === settled) installing.delete(target);
  }
}

/** Backup names tried (one per millisecond after `now`) before a commit gives up. */
const BACKUP_NAME_TRIES = 1000;

/**
 * Hard-link the current `target` (when it is a regular file) to a backup name nobody uses yet:
 * link(2) never replaces, so an existing backup is never lost. Returns the backup path or null.
 */
async function linkBackup(target: string, now: Date): Promise<string | null> {
  const st = await lstat(target).catch(() => null);
  if (!st?.isFile()) return null;
  for (let i = 0; i < BACKUP_NAME_TRIES; i++) {
    const name = backupName(target, new Date(now.getTime() + i));
    try {
      await link(target, name);
      return name;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return null; // the target went away meanwhile: nothing to back up
      if (code !== "EEXIST") throw err;
    }
  }
  throw new Error(`no free backup name for ${target} in ${BACKUP_NAME_TRIES} tries`);
}

export interface UploadResult {
  path: string;
  bytes: number;
  /** hex SHA-256 of the installed file, when the upload was checksummed with sha256 */
  sha256?: string;
  /** the end-to-end checksum the upload was verified against (absent for unchecked uploads) */
  checksum?: { algorithm: ChecksumAlgorithm; value: string; verified: boolean };
  backup: string | null;
}

const DONE = Promise.resolve();

const writeFailed = (err: unknown) =>
  new ExecError("UPLOAD_FAILED", `write failed: ${(err as Error).message}`, "check free disk space");

/**
 * Incremental atomic writer; call `write` per chunk (in order), then `commit` or `abort`. Chunks
 * are checksummed as they arrive and go to a `StagedFileWriter` (O_DIRECT from staging buffers,
 * see filewriter.ts). With a checksum trailer the last bytes are held back until `commit`, which
 * reads them as the expected value. A chunk must not be changed until its `write` resolved.
 */
export class AtomicUpload {
  private fh: FileHandle | null = null;
  private readonly checksum: Checksum | null;
  private readonly trailer: number;
  private bytes = 0;
  private readonly tmp: string;
  private failed: Error | null = null;
  private tail: Uint8Array = new Uint8Array(0);
  private writer: StagedFileWriter | null = null;
  /**
   * Set while a write waits for a staging buffer: later writes queue behind it, so the order of
   * the data never depends on the caller awaiting.
   */
  private pending: Promise<void> | null = null;

  private constructor(
    readonly target: string,
    private readonly maxBytes: number,
    private readonly mode: number,
    private readonly spec: ChecksumSpec,
  ) {
    this.tmp = join(dirname(target), `.${basename(target)}.kosmos-${randomBytes(6).toString("hex")}.tmp`);
    this.checksum = newChecksum(spec);
    this.trailer = trailerBytes(spec);
  }

  /**
   * `checksum`: what to verify against (default: compute a SHA-256 and report it, verify nothing;
   * `{ algorithm: "none" }` skips checksumming).
   */
  static async open(
    target: string,
    opts: { maxBytes?: number; mode?: number; checksum?: ChecksumSpec } = {},
  ): Promise<AtomicUpload> {
    const u = new AtomicUpload(
      target,
      opts.maxBytes ?? Number.POSITIVE_INFINITY,
      opts.mode ?? 0o644,
      opts.checksum ?? { algorithm: "sha256" },
    );
    try {
      await mkdir(dirname(target), { recursive: true, mode: 0o755 });
      u.fh = await open(u.tmp, "wx", u.mode);
      u.writer = await StagedFileWriter.open(u.fh);
    } catch (err) {
      await u.abort();
      throw new ExecError(
        "UPLOAD_FAILED",
        `cannot create ${u.tmp}: ${(err as Error).message}`,
        "check the directory",
      );
    }
    return u;
  }

  /** Data bytes received so far (a trailer included until `commit`). */
  get size(): number {
    return this.bytes;
  }

  /** The first failure (too large, write error); the upload can only be aborted then. */
  get error(): Error | null {
    return this.failed;
  }

  /**
   * Add a chunk (in order); errors surface in `commit`. Await the result for backpressure; the
   * chunk must stay unchanged until it resolves.
   */
  write(chunk: Uint8Array): Promise<void> {
    this.bytes += chunk.byteLength;
    if (this.bytes > this.maxBytes + this.trailer && !this.failed) {
      this.failed = new ExecError(
        "UPLOAD_TOO_LARGE",
        `upload exceeds ${this.maxBytes} bytes`,
        "raise limits.maxUploadBytes on the agent",
      );
    }
    if (this.failed) return this.pending ?? DONE;
    const t = this.trailer;
    let pieces: Uint8Array[];
    if (t === 0) pieces = [chunk];
    else if (chunk.byteLength >= t) {
      // hold back the last `t` bytes: they may be the trailer
      pieces = [this.tail, chunk.subarray(0, chunk.byteLength - t)];
      this.tail = chunk.slice(chunk.byteLength - t);
    } else {
      const joined = new Uint8Array(this.tail.byteLength + chunk.byteLength);
      joined.set(this.tail);
      joined.set(chunk, this.tail.byteLength);
      const cut = Math.max(0, joined.byteLength - t);
      this.tail = joined.slice(cut);
      pieces = [joined.subarray(0, cut)];
    }
    const waiting = this.pending;
    const r = waiting ? waiting.then(() => this.putAll(pieces, 0)) : this.putAll(pieces, 0);
    if (!r) return DONE;
    this.pending = r;
    void r.then(() => {
      if (this.pending === r) this.pending = null;
    });
    return r;
  }

  /** Checksum and write pieces[i..] in order; a promise only when the writer has to wait. */
  private putAll(pieces: Uint8Array[], i: number): Promise<void> | undefined {
    for (; i < pieces.length; i++) {
      const r = this.put(pieces[i] as Uint8Array);
      if (r) {
        const next = i + 1;
        return next < pieces.length ? r.then(() => this.putAll(pieces, next)) : r;
      }
    }
    return undefined;
  }

  /** Checksum and write one piece; failures go to `failed` (never rejects). */
  private put(data: Uint8Array): Promise<void> | undefined {
    const w = this.writer;
    if (data.byteLength === 0 || this.failed || !w) return undefined;
    this.checksum?.update(data);
    const check = () => {
      if (w.error) this.failed ??= writeFailed(w.error);
    };
    const r = w.write(data);
    if (!r) {
      check();
      return undefined;
    }
    return r.then(check, (err: unknown) => {
      this.failed ??= writeFailed(err);
    });
  }

  /**
   * Finish: write the rest, verify the checksum (from the headers or the trailer), fsync, keep a
   * backup of an existing target, rename into place. On any failure the target is untouched and
   * the temp file removed.
   */
  async commit(now: Date = new Date()): Promise<UploadResult> {
    let expect: string | undefined;
    const spec = this.spec;
    if (!this.failed && spec.algorithm !== "none") {
      if (spec.trailer) {
        if (this.tail.byteLength < this.trailer) {
          await this.abort();
          throw new ExecError(
            "CHECKSUM_MISMATCH",
            `body too short for a ${spec.algorithm} trailer`,
            `send the ${this.trailer} hex characters of the checksum after the data`,
          );
        }
        expect = new TextDecoder().decode(this.tail);
        this.bytes -= this.trailer;
        this.tail = new Uint8Array(0);
      } else expect = spec.expect;
    }
    await this.pending;
    if (!this.failed) {
      try {
        await this.writer?.finish();
      } catch (err) {
        this.failed ??= writeFailed(err);
      }
    }
    if (this.failed) {
      await this.abort();
      throw this.failed;
    }
    const sum = this.checksum?.digest();
    if (sum !== undefined && expect !== undefined && !sameHex(expect, sum)) {
      await this.abort();
      throw new ExecError(
        "CHECKSUM_MISMATCH",
        `${spec.algorithm} mismatch: got ${sum}, expected ${expect}`,
        "re-send the file",
      );
    }
    try {
      await this.writer?.close();
      this.writer = null;
      await this.fh?.sync();
      await this.fh?.close();
      this.fh = null;
      // one commit at a time per target: each backs up exactly the version it replaces
      const backup = await withInstallLock(this.target, async () => {
        const b = await linkBackup(this.target, now);
        await rename(this.tmp, this.target);
        return b;
      });
      const result: UploadResult = { path: this.target, bytes: this.bytes, backup };
      if (sum !== undefined && this.checksum) {
        result.checksum = { algorithm: this.checksum.algorithm, value: sum, verified: expect !== undefined };
        if (this.checksum.algorithm === "sha256") result.sha256 = sum;
      }
      return result;
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
    this.failed ??= new ExecError("UPLOAD_FAILED", "upload aborted", "");
    // let queued and running writes finish before the descriptors are closed
    await this.pending;
    await this.writer?.close();
    this.writer = null;
    await this.fh?.close().catch(() => {});
    this.fh = null;
    await rm(this.tmp, { force: true });
  }
}
