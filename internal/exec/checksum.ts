/**
 * End-to-end checksums of `PUT /v1/files` uploads (see docs/exec.md, "Upload wire protocol").
 *
 * - `sha256`: plain SHA-256 (given up front in `x-kosmos-sha256`, or as a 64-hex trailer).
 * - `gmac-aes-256-gcm`: GMAC (NIST SP 800-38D: AES-256-GCM over the data as additional
 *   authenticated data, empty plaintext, 128-bit tag) under a fresh random key and IV that the
 *   client picks for each upload and sends in the `x-kosmos-checksum` header (inside TLS). It is a
 *   keyed polynomial hash: any change of the data made without knowledge of the key (bit flips,
 *   truncation, reordered or duplicated chunks, a changed file) goes undetected with probability at
 *   most (blocks + 1) / 2^128, e.g. < 2^-103 for 256 MiB. That is the integrity an unkeyed
 *   SHA-256 gives here, at ~7 GB/s instead of ~1.3 GB/s (SHA-NI) per core, which is what lets an
 *   upload keep up with a local copy. It does not give a digest of the file to publish: ask for
 *   `sha256` when that is wanted.
 */
import { type CipherGCM, createCipheriv, createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { ExecError } from "./errors.ts";

export type ChecksumAlgorithm = "sha256" | "gmac-aes-256-gcm";

export const GMAC = "gmac-aes-256-gcm" as const;

/** Length of the hex value (and of the body trailer) of each algorithm. */
export const HEX_LENGTH: Record<ChecksumAlgorithm, number> = { sha256: 64, [GMAC]: 32 };

/** Headers of the upload protocol. */
export const HEADER_SHA256 = "x-kosmos-sha256";
export const HEADER_CHECKSUM = "x-kosmos-checksum";
/** `x-kosmos-sha256: trailer`: the body ends with the 64-hex SHA-256 of the bytes before it. */
export const SHA256_TRAILER = "trailer";
/**
 * The `x-kosmos-sha256` value sent together with `x-kosmos-checksum`. Agents that predate
 * `x-kosmos-checksum` take it as the expected SHA-256, which never matches, so they refuse the
 * upload with CHECKSUM_MISMATCH (target untouched) instead of installing the data with the trailer
 * appended; the client then falls back to a SHA-256 given up front.
 */
export const SHA256_SEE_CHECKSUM = "see-x-kosmos-checksum";

/** Incremental checksum: `update` per chunk, `digest` once (lowercase hex). */
export interface Checksum {
  readonly algorithm: ChecksumAlgorithm;
  update(data: Uint8Array): void;
  digest(): string;
}

export function sha256Checksum(): Checksum {
  const h = createHash("sha256");
  return {
    algorithm: "sha256",
    update: (d) => {
      h.update(d);
    },
    digest: () => h.digest("hex"),
  };
}

export const GMAC_KEY_BYTES = 32;
export const GMAC_IV_BYTES = 12;

export function gmacChecksum(key: Uint8Array, iv: Uint8Array): Checksum {
  if (key.byteLength !== GMAC_KEY_BYTES || iv.byteLength !== GMAC_IV_BYTES)
    throw new ExecError(
      "BAD_REQUEST",
      `gmac needs a ${GMAC_KEY_BYTES}-byte key and a ${GMAC_IV_BYTES}-byte iv`,
      `send ${HEADER_CHECKSUM}: ${GMAC}; key=<64 hex>; iv=<24 hex>`,
    );
  const c = createCipheriv("aes-256-gcm", key, iv, { authTagLength: 16 }) as CipherGCM;
  return {
    algorithm: GMAC,
    // GCM accepts the additional data in any number of pieces before the (empty) plaintext
    update: (d) => {
      c.setAAD(d);
    },
    digest: () => {
      c.final();
      return c.getAuthTag().toString("hex");
    },
  };
}

/** What the agent verifies an upload against (parsed from the request headers). */
export type ChecksumSpec =
  | { algorithm: "sha256"; expect?: string; trailer?: false }
  | { algorithm: "sha256"; trailer: true }
  | { algorithm: typeof GMAC; key: Uint8Array; iv: Uint8Array; trailer: true }
  /** no checksum at all (legacy /upload, workflow steps: the data is not from a file stream) */
  | { algorithm: "none" };

export function newChecksum(spec: ChecksumSpec): Checksum | null {
  if (spec.algorithm === "none") return null;
  return spec.algorithm === GMAC ? gmacChecksum(spec.key, spec.iv) : sha256Checksum();
}

/** Bytes at the end of the body that are the expected checksum (0 without a trailer). */
export function trailerBytes(spec: ChecksumSpec): number {
  return spec.algorithm !== "none" && spec.trailer ? HEX_LENGTH[spec.algorithm] : 0;
}

const HEX = /^[0-9a-f]+$/;

function badHeader(message: string): ExecError {
  return new ExecError(
    "BAD_REQUEST",
    message,
    `send ${HEADER_SHA256}: <64 hex>|${SHA256_TRAILER}, or ${HEADER_CHECKSUM}: ${GMAC}; key=<64 hex>; iv=<24 hex> with ${HEADER_SHA256}: ${SHA256_SEE_CHECKSUM}`,
  );
}

/**
 * Parse the checksum headers of `PUT /v1/files` (pure). Without either header the agent still
 * computes a SHA-256 and reports it, but verifies nothing.
 */
export function parseChecksumHeaders(header: (name: string) => string | undefined): ChecksumSpec {
  const sha = header(HEADER_SHA256)?.trim();
  const cs = header(HEADER_CHECKSUM)?.trim();
  if (cs === undefined) {
    if (sha === undefined || sha === "") return { algorithm: "sha256" };
    if (sha === SHA256_TRAILER) return { algorithm: "sha256", trailer: true };
    const hex = sha.toLowerCase();
    // anything else is an expected value: a wrong one is a mismatch (what agents always did)
    return { algorithm: "sha256", expect: hex };
  }
  if (sha !== undefined && sha !== SHA256_SEE_CHECKSUM)
    throw badHeader(`${HEADER_SHA256} must be "${SHA256_SEE_CHECKSUM}" when ${HEADER_CHECKSUM} is sent`);
  const [alg, ...params] = cs.split(";").map((p) => p.trim());
  const kv = new Map<string, string>();
  for (const p of params) {
    const i = p.indexOf("=");
    if (i <= 0) throw badHeader(`malformed ${HEADER_CHECKSUM} parameter ${JSON.stringify(p)}`);
    kv.set(p.slice(0, i).toLowerCase(), p.slice(i + 1).toLowerCase());
  }
  if (alg === "sha256") return { algorithm: "sha256", trailer: true };
  if (alg !== GMAC) throw badHeader(`unsupported checksum ${JSON.stringify(alg)}`);
  const key = kv.get("key") ?? "";
  const iv = kv.get("iv") ?? "";
  if (key.length !== GMAC_KEY_BYTES * 2 || iv.length !== GMAC_IV_BYTES * 2 || !HEX.test(key) || !HEX.test(iv))
    throw badHeader(`${GMAC} needs key=<64 hex> and iv=<24 hex>`);
  return { algorithm: GMAC, key: Buffer.from(key, "hex"), iv: Buffer.from(iv, "hex"), trailer: true };
}

/** A fresh GMAC key/IV for one upload and the `x-kosmos-checksum` header carrying it. */
export function newGmacParams(): { key: Buffer; iv: Buffer; header: string } {
  const key = randomBytes(GMAC_KEY_BYTES);
  const iv = randomBytes(GMAC_IV_BYTES);
  return { key, iv, header: `${GMAC}; key=${key.toString("hex")}; iv=${iv.toString("hex")}` };
}

/** Constant-time comparison of two hex values (case-insensitive). */
export function sameHex(a: string, b: string): boolean {
  const x = Buffer.from(a.toLowerCase());
  const y = Buffer.from(b.toLowerCase());
  return x.byteLength === y.byteLength && timingSafeEqual(x, y);
}
