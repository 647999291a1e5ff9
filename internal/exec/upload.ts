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

/** Hex SHA-256 length: the size of the checksum trailer (see `TRAILER`). */
export const TRAILER_BYTES = 64;
/**
 * `x-kosmos-sha256: trailer` (passed to `commit`): the body ends with the 64 hex characters of
 * the SHA-256 of the bytes before them, so a client can hash while streaming (one read of the
 * file). An agent that predates it compares "trailer" with the real sum and refuses the upload
 * with CHECKSUM_MISMATCH, so an old agent never installs a file with the trailer appended.
 */
export const TRAILER = "trailer";

/** Bytes buffered by the file writer before one write(2) (instead of one awaited write per body chunk). */
const WRITE_BUFFER = 4 * 1024 * 1024;

type FileSink = ReturnType<ReturnType<typeof Bun.file>["writer"]>;

/**
 * Incremental atomic writer; call `write` per chunk, then `commit` or `abort`. Chunks are hashed as
 * they arrive and go through Bun's buffered file writer (`WRITE_BUFFER` bytes per write(2)). The
 * last `TRAILER_BYTES` are held back until `commit`, which either writes them or, in trailer mode,
 * reads them as the expected checksum.
 */
export class AtomicUpload {
  private fh: FileHandle | null = null;
  private sink: FileSink | null = null;
  private readonly hash = createHash("sha256");
  private bytes = 0;
  private readonly tmp: string;
  private failed: Error | null = null;
  private tail: Uint8Array = new Uint8Array(0);

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
      // the writer does not own the descriptor: `fh` closes it
      u.sink = Bun.file(u.fh.fd).writer({ highWaterMark: WRITE_BUFFER });
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

  get size(): number {
    return this.bytes;
  }

  /** Queue a chunk (ordered); errors surface in `commit`. Await the result for backpressure. */
  async write(chunk: Uint8Array): Promise<void> {
    this.bytes += chunk.byteLength;
    if (this.bytes > this.maxBytes && !this.failed) {
      this.failed = new ExecError(
        "UPLOAD_TOO_LARGE",
        `upload exceeds ${this.maxBytes} bytes`,
        "raise limits.maxUploadBytes on the agent",
      );
    }
    if (this.failed) return;
    // hold back the last TRAILER_BYTES (maybe a checksum trailer); `put` is synchronous up to the
    // sink, so the order of the data never depends on the caller awaiting
    let waits: (Promise<void> | undefined)[];
    if (chunk.byteLength >= TRAILER_BYTES) {
      const held = this.tail;
      this.tail = chunk.slice(chunk.byteLength - TRAILER_BYTES);
      waits = [this.put(held), this.put(chunk.subarray(0, chunk.byteLength - TRAILER_BYTES))];
    } else {
      const joined = new Uint8Array(this.tail.byteLength + chunk.byteLength);
      joined.set(this.tail);
      joined.set(chunk, this.tail.byteLength);
      const cut = Math.max(0, joined.byteLength - TRAILER_BYTES);
      this.tail = joined.subarray(cut);
      waits = [this.put(joined.subarray(0, cut))];
    }
    for (const w of waits) if (w) await w;
  }

  /** Hash and hand to the sink; returns a promise only when the sink asks for backpressure. */
  private put(data: Uint8Array): Promise<void> | undefined {
    if (data.byteLength === 0 || this.failed || !this.sink) return undefined;
    this.hash.update(data);
    const fail = (err: unknown) => {
      this.failed ??= new ExecError(
        "UPLOAD_FAILED",
        `write failed: ${(err as Error).message}`,
        "check free disk space",
      );
    };
    try {
      const r = this.sink.write(data);
      return r instanceof Promise ? r.then(() => undefined, fail) : undefined;
    } catch (err) {
      fail(err);
      return undefined;
    }
  }

  /**
   * Finish: verify the checksum (`expectSha256` hex, or `TRAILER` to take it from the end of the
   * body), fsync, keep a backup of an existing target, rename into place. On any failure the
   * target is untouched and the temp file removed.
   */
  async commit(expectSha256?: string, now: Date = new Date()): Promise<UploadResult> {
    let expect = expectSha256;
    if (!this.failed) {
      if (expect === TRAILER) {
        if (this.tail.byteLength < TRAILER_BYTES) {
          await this.abort();
          throw new ExecError(
            "CHECKSUM_MISMATCH",
            "body too short for a sha256 trailer",
            "send the 64 hex sha256 after the data",
          );
        }
        expect = new TextDecoder().decode(this.tail);
        this.bytes -= TRAILER_BYTES;
      } else await this.put(this.tail);
      this.tail = new Uint8Array(0);
      try {
        await this.sink?.end();
      } catch (err) {
        this.failed ??= new ExecError(
          "UPLOAD_FAILED",
          `write failed: ${(err as Error).message}`,
          "check free disk space",
        );
      }
      this.sink = null;
    }
    if (this.failed) {
      await this.abort();
      throw this.failed;
    }
    const sum = this.hash.digest("hex");
    if (expect && expect.toLowerCase() !== sum) {
      await this.abort();
      throw new ExecError(
        "CHECKSUM_MISMATCH",
        `sha256 mismatch: got ${sum}, expected ${expect}`,
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
    try {
      await this.sink?.end();
    } catch {
      // the temp file is removed anyway
    }
    this.sink = null;
    await this.fh?.close().catch(() => {});
    this.fh = null;
    await rm(this.tmp, { force: true });
  }
}
