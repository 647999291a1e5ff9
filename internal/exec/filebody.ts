/** Reading a local file for an upload: the streamed request body, and a SHA-256 read first. */
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import type { Checksum } from "./checksum.ts";
import { ExecError } from "./errors.ts";

/** Read size of uploads (one positioned read per chunk, the next one read ahead). */
const UPLOAD_CHUNK = 1024 * 1024;
/** Read buffers reused round-robin (see fileBody). */
const READ_BUFFERS = 4;

export interface UploadProgress {
  sent: number;
  total: number;
}

/**
 * The request body: `total` bytes of the file in UPLOAD_CHUNK reads (the next read is issued
 * before the current chunk is handed over, so reading overlaps checksumming and sending), then
 * the hex checksum when `checksum` is given. Fails when the file shrinks or grows meanwhile.
 *
 * The reads go to a ring of READ_BUFFERS buffers instead of a fresh buffer per chunk (which cost
 * the client ~80-120 ms of CPU per 256 MiB in page faults and GC). That is safe because Bun's fetch
 * copies a chunk into its HTTP thread's send buffer when its stream sink takes it (the sink's
 * write() gets a borrowed byte slice), and a buffer is refilled only three chunks after the sink
 * took it. Were that ever not so, the data sent would not match the checksum computed here and
 * the agent would refuse the upload (CHECKSUM_MISMATCH), never install it.
 */
export function fileBody(
  fh: FileHandle,
  localPath: string,
  total: number,
  checksum: Checksum | null,
  onProgress?: (p: UploadProgress) => void,
): ReadableStream<Uint8Array> {
  let pos = 0;
  const ring: Buffer[] = [];
  let reads = 0;
  const readAt = async (at: number): Promise<Uint8Array> => {
    const want = Math.min(UPLOAD_CHUNK, total - at);
    const slot = reads++ % READ_BUFFERS;
    ring[slot] ??= Buffer.allocUnsafe(Math.max(1, Math.min(UPLOAD_CHUNK, total)));
    const buf = ring[slot] as Buffer;
    // one byte past the end to notice a file that grew
    const { bytesRead } = await fh.read(buf, 0, want > 0 ? want : 1, at);
    if (want > 0 ? bytesRead !== want : bytesRead !== 0)
      throw new ExecError("UPLOAD_FAILED", `${localPath} changed during the upload`, "retry");
    return buf.subarray(0, bytesRead);
  };
  let next: Promise<Uint8Array> | null = readAt(0);
  // a read-ahead that fails before it is awaited must not be an unhandled rejection
  next.catch(() => {});
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      if (!next) return;
      let chunk: Uint8Array;
      try {
        chunk = await next;
      } catch (err) {
        next = null;
        ctl.error(err);
        return;
      }
      if (chunk.byteLength === 0) {
        next = null;
        if (checksum) ctl.enqueue(Buffer.from(checksum.digest(), "latin1"));
        ctl.close();
        return;
      }
      pos += chunk.byteLength;
      next = readAt(pos);
      next.catch(() => {});
      checksum?.update(chunk);
      onProgress?.({ sent: pos, total });
      ctl.enqueue(chunk);
    },
  });
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(UPLOAD_CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.byteLength, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest("hex");
}
