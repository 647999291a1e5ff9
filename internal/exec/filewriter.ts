/**
 * Sequential file writer for uploads. Data is copied into a few aligned staging buffers (one
 * memcpy on the event loop, while the bytes are still in this core's cache) and each full buffer is
 * written with O_DIRECT from the I/O thread pool: the disk reads it by DMA, so there is no copy
 * into the page cache, no dirty-page writeback afterwards, and the final fsync has little left to
 * do: less than half the CPU of buffered writes plus their writeback (figures: docs/benchmarks.md,
 * "exec").
 *
 * Where O_DIRECT is refused (tmpfs, some FUSE filesystems: EINVAL at open or at the first write)
 * the writer falls back to buffered positioned writes, with an fdatasync in the background every
 * SYNC_EVERY bytes so the disk works while data arrives. The last, partial buffer is always
 * written buffered (O_DIRECT needs aligned lengths).
 */
import { constants } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";

/** Size of one staging buffer = one O_DIRECT write. */
export const STAGE_BYTES = 2 * 1024 * 1024;
/**
 * Staging buffers per upload: one being filled, the others being written (10 MiB per upload). The
 * disk needs a few writes queued: with fewer buffers the agent waits for a free one (figures:
 * docs/benchmarks.md, "exec").
 */
export const STAGES = 5;
/** O_DIRECT alignment of offsets and lengths (page size: covers 512 and 4096-byte devices). */
const ALIGN = 4096;
/** Buffered fallback only: bytes between background fdatasync calls. */
const SYNC_EVERY = 32 * 1024 * 1024;

/** Write all of `data` at `position` through `fh`. */
export type DirectWrite = (fh: FileHandle, data: Uint8Array, position: number) => Promise<void>;

interface InFlight {
  buf: Buffer;
  done: Promise<void>;
  settled: boolean;
}

export class StagedFileWriter {
  /** the O_DIRECT descriptor, closed only in `close` (writes may still be queued on it) */
  private readonly direct: FileHandle | null;
  /** false once O_DIRECT was refused: full buffers go through `fh` from then on */
  private useDirect: boolean;
  private readonly inFlight: InFlight[] = [];
  private allocated = 0;
  private cur: Buffer | null = null;
  private curLen = 0;
  /** file offset of `cur[0]` */
  private offset = 0;
  private failed: Error | null = null;
  private syncing: Promise<void> | null = null;
  private syncedTo = 0;

  private constructor(
    private readonly fh: FileHandle,
    direct: FileHandle | null,
    private readonly directWrite: DirectWrite,
  ) {
    this.direct = direct;
    this.useDirect = direct !== null;
  }

  /**
   * Writer for the new, empty file open as `fh`. The O_DIRECT descriptor is a reopen of `fh`
   * through /proc/self/fd (the same inode, checked), never of the path: someone who can write to
   * the directory cannot swap the file for a symlink in between.
   */
  static async open(
    fh: FileHandle,
    opts: {
      direct?: boolean;
      /**
       * How a full staging buffer is written with O_DIRECT (default pwrite on the O_DIRECT
       * descriptor). Tests use it to make the kernel refuse O_DIRECT half-way (EINVAL), which no
       * filesystem on the test machines does.
       */
      directWrite?: DirectWrite;
    } = {},
  ): Promise<StagedFileWriter> {
    let direct: FileHandle | null = null;
    if ((opts.direct ?? true) && constants.O_DIRECT) {
      direct = await open(`/proc/self/fd/${fh.fd}`, constants.O_WRONLY | constants.O_DIRECT).catch(
        () => null,
      );
      if (direct) {
        const [a, b] = await Promise.all([fh.stat(), direct.stat()]);
        if (a.dev !== b.dev || a.ino !== b.ino) {
          await direct.close();
          direct = null;
        }
      }
    }
    return new StagedFileWriter(fh, direct, opts.directWrite ?? writeAll);
  }

  /** The first write error; later writes are dropped. */
  get error(): Error | null {
    return this.failed;
  }

  /** Whether full buffers still go out with O_DIRECT (false after a fallback). */
  get usesDirectIo(): boolean {
    return this.useDirect;
  }

  /**
   * Copy `data` in. Returns undefined when it was copied at once (the caller may reuse it), or a
   * promise when every staging buffer was busy: `data` must stay unchanged until it resolves, and
   * the next `write` must wait for it.
   */
  write(data: Uint8Array): Promise<void> | undefined {
    let off = 0;
    while (off < data.byteLength && !this.failed) {
      if (!this.cur) {
        const b = this.freeBuffer();
        if (!b) return this.writeLater(data.subarray(off));
        this.cur = b;
      }
      const n = Math.min(STAGE_BYTES - this.curLen, data.byteLength - off);
      this.cur.set(off === 0 && n === data.byteLength ? data : data.subarray(off, off + n), this.curLen);
      this.curLen += n;
      off += n;
      if (this.curLen === STAGE_BYTES) this.submit();
    }
    return undefined;
  }

  /** Write the partial last buffer and wait for every write; throws the first write error. */
  async finish(): Promise<void> {
    if (this.cur && this.curLen > 0 && !this.failed) {
      const at = this.offset;
      const tail = this.cur.subarray(0, this.curLen);
      this.offset += this.curLen;
      this.cur = null;
      this.curLen = 0;
      await this.settle(writeAll(this.fh, tail, at));
    }
    await this.drain();
    if (this.failed) throw this.failed;
  }

  /** Wait for running writes and close the O_DIRECT descriptor (the caller closes its own). */
  async close(): Promise<void> {
    await this.drain();
    this.useDirect = false;
    await this.direct?.close().catch(() => {});
  }

  private async drain(): Promise<void> {
    while (this.inFlight.length) await this.inFlight.shift()?.done;
    if (this.syncing) await this.syncing;
  }

  /** A free staging buffer without waiting: a new one while fewer than STAGES exist, or the oldest once written. */
  private freeBuffer(): Buffer | null {
    const oldest = this.inFlight[0];
    if (this.allocated < STAGES || !oldest) {
      this.allocated++;
      // Buffers of this size are page-aligned allocations; if one were not, O_DIRECT would
      // refuse it with EINVAL and the writer would fall back to buffered writes.
      return Buffer.allocUnsafe(STAGE_BYTES);
    }
    if (!oldest.settled) return null;
    this.inFlight.shift();
    return oldest.buf;
  }

  /** Wait for the oldest write, then copy the rest of the data. */
  private async writeLater(rest: Uint8Array): Promise<void> {
    const oldest = this.inFlight.shift() as InFlight;
    await oldest.done;
    this.cur = oldest.buf;
    const more = this.write(rest);
    if (more) await more;
  }

  private submit(): void {
    const buf = this.cur as Buffer;
    const len = this.curLen;
    const at = this.offset;
    this.cur = null;
    this.curLen = 0;
    this.offset += len;
    const entry: InFlight = { buf, done: Promise.resolve(), settled: false };
    entry.done = this.settle(this.writeStage(buf.subarray(0, len), at)).then(() => {
      entry.settled = true;
    });
    this.inFlight.push(entry);
  }

  private async writeStage(data: Uint8Array, at: number): Promise<void> {
    const direct = this.direct;
    if (direct && this.useDirect && at % ALIGN === 0 && data.byteLength % ALIGN === 0) {
      try {
        await this.directWrite(direct, data, at);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EINVAL") throw err;
        // O_DIRECT not supported here after all: buffered from now on (the descriptor stays
        // open until `close`: other writes may be queued on it)
        this.useDirect = false;
      }
    }
    await writeAll(this.fh, data, at);
    if (!this.syncing && at + data.byteLength - this.syncedTo >= SYNC_EVERY) {
      const upTo = at + data.byteLength;
      // a writeback error reported here is not reported again to the final fsync: keep it
      this.syncing = this.settle(this.fh.datasync()).then(() => {
        this.syncedTo = upTo;
        this.syncing = null;
      });
    }
  }

  /** Record the first failure instead of rejecting. */
  private settle(p: Promise<unknown>): Promise<void> {
    return p.then(
      () => undefined,
      (err: unknown) => {
        this.failed ??= err instanceof Error ? err : new Error(String(err));
      },
    );
  }
}

/** pwrite(2) all of `data` at `position`, continuing after short writes. */
async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < data.byteLength) {
    const { bytesWritten } = await fh.write(data, off, data.byteLength - off, position + off);
    if (bytesWritten <= 0) throw new Error(`short write at offset ${position + off}`);
    off += bytesWritten;
  }
}
