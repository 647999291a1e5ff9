import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ChecksumSpec,
  GMAC,
  gmacChecksum,
  newGmacParams,
  parseChecksumHeaders,
  SHA256_SEE_CHECKSUM,
  sha256Checksum,
} from "../../internal/exec/checksum.ts";
import { ExecError } from "../../internal/exec/errors.ts";
import { STAGE_BYTES, STAGES, StagedFileWriter } from "../../internal/exec/filewriter.ts";
import { AtomicUpload } from "../../internal/exec/upload.ts";
import { fdHasODirect, findDirectIoPlace, tempDirIn } from "../helpers/direct-io.ts";

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
/** One-shot GMAC with node:crypto (AES-256-GCM, data as AAD, empty plaintext). */
const gmacOnce = (key: Uint8Array, iv: Uint8Array, data: Uint8Array) => {
  const c = createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(data);
  c.final();
  return c.getAuthTag().toString("hex");
};

/** Copies of `data` in pieces of pseudo-random sizes in [1, max] (deterministic per seed). */
function chunks(data: Uint8Array, max: number, seed = 1): Uint8Array[] {
  const out: Uint8Array[] = [];
  let x = seed;
  for (let off = 0; off < data.byteLength; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = Math.min(data.byteLength - off, 1 + (x % max));
    // a copy (Buffer#slice would be a view of `data`)
    out.push(Uint8Array.prototype.slice.call(data, off, off + n));
    off += n;
  }
  return out;
}

describe("checksums", () => {
  test("GMAC is AES-256-GCM over the data as AAD (NIST GCM test vector, 256-bit key, PT empty)", () => {
    const key = Buffer.from("78dc4e0aaf52d935c3c01eea57428f00ca1fd475f5da86a49c8dd73d68c8e223", "hex");
    const iv = Buffer.from("d79cf22d504cc793c3fb6c8a", "hex");
    const g = gmacChecksum(key, iv);
    g.update(Buffer.from("b96baa8c1c75a671bfb2d08d06be5f36", "hex"));
    expect(g.digest()).toBe("3e5d486aa2e30b22e040b85723a06e76");
  });

  test("incremental GMAC and SHA-256 do not depend on how the data is chunked", () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const { key, iv } = newGmacParams();
    const want = gmacOnce(key, iv, data);
    for (const max of [1 << 20, 65_536, 16_389, 37]) {
      const g = gmacChecksum(key, iv);
      const s = sha256Checksum();
      for (const c of chunks(data.subarray(0, max === 37 ? 100_000 : data.byteLength), max)) {
        g.update(c);
        s.update(c);
      }
      if (max === 37) {
        expect(g.digest()).toBe(gmacOnce(key, iv, data.subarray(0, 100_000)));
        expect(s.digest()).toBe(sha(data.subarray(0, 100_000)));
      } else {
        expect(g.digest()).toBe(want);
        expect(s.digest()).toBe(sha(data));
      }
    }
  });

  test("GMAC detects a flipped bit, a truncation and swapped chunks", () => {
    const data = randomBytes(1 << 20);
    const { key, iv } = newGmacParams();
    const tag = gmacOnce(key, iv, data);
    const flipped = Buffer.from(data);
    flipped[123_456] = (flipped[123_456] as number) ^ 1;
    expect(gmacOnce(key, iv, flipped)).not.toBe(tag);
    expect(gmacOnce(key, iv, data.subarray(0, data.byteLength - 1))).not.toBe(tag);
    const swapped = Buffer.concat([data.subarray(1 << 19), data.subarray(0, 1 << 19)]);
    expect(gmacOnce(key, iv, swapped)).not.toBe(tag);
    // and a fresh key gives an unrelated tag for the same data
    const other = newGmacParams();
    expect(gmacOnce(other.key, other.iv, data)).not.toBe(tag);
  });

  test("upload headers parse into a checksum spec", () => {
    const h = (m: Record<string, string | undefined>) => (k: string) => m[k];
    expect(parseChecksumHeaders(h({}))).toEqual({ algorithm: "sha256" });
    expect(parseChecksumHeaders(h({ "x-kosmos-sha256": "trailer" }))).toEqual({
      algorithm: "sha256",
      trailer: true,
    });
    expect(parseChecksumHeaders(h({ "x-kosmos-sha256": "AB".repeat(32) }))).toEqual({
      algorithm: "sha256",
      expect: "ab".repeat(32),
    });
    const p = newGmacParams();
    const g = parseChecksumHeaders(
      h({ "x-kosmos-checksum": p.header, "x-kosmos-sha256": SHA256_SEE_CHECKSUM }),
    ) as Extract<ChecksumSpec, { algorithm: typeof GMAC }>;
    expect(g.algorithm).toBe(GMAC);
    expect(Buffer.from(g.key).equals(p.key)).toBe(true);
    expect(Buffer.from(g.iv).equals(p.iv)).toBe(true);
    expect(parseChecksumHeaders(h({ "x-kosmos-checksum": "sha256" }))).toEqual({
      algorithm: "sha256",
      trailer: true,
    });
    for (const bad of [
      { "x-kosmos-checksum": "md5" },
      { "x-kosmos-checksum": `${GMAC}; key=00; iv=00` },
      { "x-kosmos-checksum": `${GMAC}; key=${"zz".repeat(32)}; iv=${"00".repeat(12)}` },
      { "x-kosmos-checksum": `${GMAC}; key` },
      { "x-kosmos-checksum": p.header, "x-kosmos-sha256": "trailer" },
    ]) {
      expect(() => parseChecksumHeaders(h(bad))).toThrow(ExecError);
    }
  });
});

describe("AtomicUpload", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "kosmos-upload-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const leftovers = async () => (await readdir(dir)).filter((f) => f.endsWith(".tmp"));

  test("writes exactly the data for any chunking (full staging buffers, partial tail, tiny chunks)", async () => {
    for (const [size, max] of [
      [(STAGES + 2) * STAGE_BYTES, 1 << 20],
      [2 * STAGE_BYTES + 4097, 70_000],
      [300_001, 13],
      [0, 1],
    ] as const) {
      const data = randomBytes(size);
      const target = join(dir, `f-${size}`);
      const u = await AtomicUpload.open(target, { checksum: { algorithm: "sha256" } });
      // not awaiting each write: the upload keeps the order itself
      const ws = chunks(data, max).map((c) => u.write(c));
      await Promise.all(ws);
      const r = await u.commit();
      expect(r.bytes).toBe(size);
      expect(r.sha256).toBe(sha(data));
      expect(r.checksum).toEqual({ algorithm: "sha256", value: sha(data), verified: false });
      expect(sha(await readFile(target))).toBe(sha(data));
    }
    expect(await leftovers()).toEqual([]);
  });

  test("GMAC trailer split across chunks smaller than the trailer verifies; a wrong tag leaves the target untouched", async () => {
    const data = randomBytes(STAGE_BYTES + 1000);
    const p = newGmacParams();
    const tag = gmacOnce(p.key, p.iv, data);
    const body = Buffer.concat([data, Buffer.from(tag, "latin1")]);
    const spec: ChecksumSpec = { algorithm: GMAC, key: p.key, iv: p.iv, trailer: true };
    const target = join(dir, "t.bin");
    const u = await AtomicUpload.open(target, { checksum: spec });
    for (const c of chunks(body.subarray(0, body.byteLength - 40), 65_536)) await u.write(c);
    for (const c of chunks(body.subarray(body.byteLength - 40), 3)) await u.write(c);
    const r = await u.commit();
    expect(r.bytes).toBe(data.byteLength);
    expect(r.checksum).toEqual({ algorithm: GMAC, value: tag, verified: true });
    expect(r.sha256).toBeUndefined();
    expect((await readFile(target)).equals(data)).toBe(true);

    await writeFile(target, "original");
    const bad = Buffer.from(body);
    bad[10] = (bad[10] as number) ^ 0xff;
    const u2 = await AtomicUpload.open(target, { checksum: spec });
    await u2.write(bad);
    await expect(u2.commit()).rejects.toMatchObject({ code: "CHECKSUM_MISMATCH" });
    expect(await readFile(target, "utf8")).toBe("original");
    expect(await leftovers()).toEqual([]);
  });

  test("two commits in the same millisecond: each backs up what it replaced; no backup is replaced", async () => {
    const target = join(dir, "conf");
    await writeFile(target, "v0");
    const now = new Date(2024, 4, 1, 13, 45, 1, 7);
    const install = async (content: string) => {
      const u = await AtomicUpload.open(target, { checksum: { algorithm: "none" } });
      await u.write(new TextEncoder().encode(content));
      return u.commit(now);
    };
    const first = await install("v1");
    const second = await install("v2");
    expect(first.backup).toBe(`${target}_2024-05-01-134501007_bak`);
    expect(second.backup).toBe(`${target}_2024-05-01-134501008_bak`);
    expect(await readFile(first.backup as string, "utf8")).toBe("v0");
    expect(await readFile(second.backup as string, "utf8")).toBe("v1");
    expect(await readFile(target, "utf8")).toBe("v2");
  });

  test("too large: refused, nothing installed", async () => {
    const target = join(dir, "big");
    const u = await AtomicUpload.open(target, { maxBytes: 1000, checksum: { algorithm: "none" } });
    await u.write(randomBytes(600));
    await u.write(randomBytes(600));
    expect(u.error).toMatchObject({ code: "UPLOAD_TOO_LARGE" });
    await expect(u.commit()).rejects.toMatchObject({ code: "UPLOAD_TOO_LARGE" });
    expect(await readdir(dir)).toEqual([]);
  });
});

/** Where O_DIRECT works (tmpdir(), else the repository's tmp/); the O_DIRECT tests skip elsewhere. */
const directIo = await findDirectIoPlace();
if (!directIo.parent) console.warn(`skipped: the O_DIRECT writer tests, because ${directIo.reason}`);
const noDirectIo = directIo.parent === null;

describe("StagedFileWriter", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await tempDirIn(directIo.parent ?? tmpdir(), "kosmos-writer-");
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Writes `data` through a writer on a new file; returns the writer's state and the file's SHA-256. */
  async function writeThrough(
    data: Uint8Array,
    opts: Parameters<typeof StagedFileWriter.open>[1],
    max: number,
  ): Promise<{ usedDirectAtOpen: boolean; usedDirectAtEnd: boolean; sha: string }> {
    const path = join(dir, "f");
    const fh = await open(path, "wx");
    let usedDirectAtOpen: boolean;
    let usedDirectAtEnd: boolean;
    try {
      const w = await StagedFileWriter.open(fh, opts);
      usedDirectAtOpen = w.usesDirectIo;
      for (const c of chunks(data, max)) {
        await w.write(c);
        c.fill(0); // the writer copied it: reusing the chunk must not change the file
      }
      await w.finish();
      usedDirectAtEnd = w.usesDirectIo;
      await w.close();
      await fh.sync();
    } finally {
      await fh.close();
    }
    return { usedDirectAtOpen, usedDirectAtEnd, sha: sha(await readFile(path)) };
  }

  test.skipIf(noDirectIo)(
    "O_DIRECT: every full staging buffer goes out through an O_DIRECT descriptor; the file is exact",
    async () => {
      // more full buffers than STAGES, so buffers are reused
      const full = 2 * STAGES + 1;
      const data = randomBytes(full * STAGE_BYTES + 12_345);
      const directFds: boolean[] = [];
      const r = await writeThrough(
        data,
        {
          // the default pwrite, recording whether the descriptor really has O_DIRECT set
          directWrite: async (d, bytes, at) => {
            directFds.push(await fdHasODirect(d.fd));
            await d.write(bytes, 0, bytes.byteLength, at);
          },
        },
        300_000,
      );
      expect(r.usedDirectAtOpen).toBe(true);
      expect(r.usedDirectAtEnd).toBe(true);
      expect(directFds).toEqual(Array(full).fill(true));
      expect(r.sha).toBe(sha(data));
    },
  );

  test("buffered (direct: false): no O_DIRECT write; the file holds exactly the bytes written", async () => {
    const data = randomBytes((2 * STAGES + 1) * STAGE_BYTES + 12_345);
    let directWrites = 0;
    const r = await writeThrough(
      data,
      {
        direct: false,
        directWrite: async () => {
          directWrites += 1;
        },
      },
      300_000,
    );
    expect(r.usedDirectAtOpen).toBe(false);
    expect(directWrites).toBe(0);
    expect(r.sha).toBe(sha(data));
  });

  test.skipIf(noDirectIo)(
    "O_DIRECT refused half-way (EINVAL on the 3rd write): the rest goes buffered, the file is exact",
    async () => {
      const data = randomBytes((2 * STAGES + 1) * STAGE_BYTES + 777);
      let directWrites = 0;
      let refused = 0;
      const r = await writeThrough(
        data,
        {
          directWrite: async (d, bytes, at) => {
            if (directWrites >= 2) {
              refused += 1;
              throw Object.assign(new Error("EINVAL: invalid argument, write"), { code: "EINVAL" });
            }
            directWrites += 1;
            await d.write(bytes, 0, bytes.byteLength, at);
          },
        },
        1_000_000,
      );
      expect(r.usedDirectAtOpen).toBe(true);
      expect(r.usedDirectAtEnd).toBe(false);
      expect(directWrites).toBe(2);
      // writes already queued when the first one was refused may each be refused once too
      expect(refused).toBeGreaterThanOrEqual(1);
      expect(refused).toBeLessThanOrEqual(STAGES);
      expect(r.sha).toBe(sha(data));
    },
  );

  test.skipIf(noDirectIo)(
    "another O_DIRECT write error (EIO) fails the writer instead of falling back",
    async () => {
      const fh = await open(join(dir, "f-eio"), "wx");
      try {
        const w = await StagedFileWriter.open(fh, {
          directWrite: async () => {
            throw Object.assign(new Error("EIO: i/o error, write"), { code: "EIO" });
          },
        });
        expect(w.usesDirectIo).toBe(true);
        for (const c of chunks(randomBytes(3 * STAGE_BYTES), STAGE_BYTES)) await w.write(c);
        await expect(w.finish()).rejects.toThrow("EIO");
        expect(w.error?.message).toContain("EIO");
        expect(w.usesDirectIo).toBe(true);
        await w.close();
      } finally {
        await fh.close();
      }
    },
  );
});
