/**
 * A balanced PAKE on X25519 in the manner of CPace (draft-irtf-cfrg-cpace, CPace-X25519): both
 * sides map the shared secret (a bearer token) to a curve point G with Elligator 2 (RFC 9380
 * §6.7.1, curve25519: A = 486662, Z = 2), exchange Y = X25519(y, G) for fresh random scalars y,
 * and derive K = X25519(y, Y_peer). The transcript of one exchange lets its observer test one
 * guess of the secret at most, and only by taking part in it: nothing in it can be checked against
 * a dictionary offline (a Y is a uniformly random point whatever the secret).
 *
 * Scalar multiplication is node:crypto's X25519 (constant-time, native), fed raw u-coordinates;
 * only the map to the curve is done here, in BigInt arithmetic over 2^255 - 19 (a few field
 * operations per secret; the agent computes its generators once at start).
 */
import { createHash, createPrivateKey, createPublicKey, diffieHellman, randomBytes } from "node:crypto";

const P = 2n ** 255n - 19n;
const A = 486_662n;
const Z = 2n;

const mod = (a: bigint): bigint => {
  const r = a % P;
  return r < 0n ? r + P : r;
};

function pow(base: bigint, exp: bigint): bigint {
  let r = 1n;
  let b = mod(base);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return r;
}

/** Euler's criterion: 0 and the squares mod p are squares. */
const isSquare = (a: bigint): boolean => pow(a, (P - 1n) / 2n) !== P - 1n;

/** RFC 9380 §6.7.1 map_to_curve_elligator2, u-coordinate only (X25519 needs no more). */
export function elligator2(u: bigint): bigint {
  let tv1 = mod(Z * u * u);
  if (tv1 === P - 1n) tv1 = 0n; // exceptional case: 1 + Z u^2 = 0
  const x1 = mod(-A * pow(tv1 + 1n, P - 2n));
  const gx1 = mod(((x1 + A) * x1 + 1n) * x1); // x^3 + A x^2 + x
  return isSquare(gx1) ? x1 : mod(-x1 - A);
}

/** Little-endian 32-byte encoding of a field element (RFC 7748 u-coordinate). */
export function encodeU(x: bigint): Uint8Array {
  const out = new Uint8Array(32);
  let v = x;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * The generator for `secret` in the domain `dsi`: SHA-512 of the length-prefixed domain and
 * secret, reduced mod p (bias < 2^-250), mapped with Elligator 2.
 */
export function generatorFor(dsi: string, secret: string): Uint8Array {
  const h = createHash("sha512")
    .update(lengthPrefixed(dsi, "generator", secret))
    .digest();
  return encodeU(elligator2(BigInt(`0x${h.toString("hex")}`) % P));
}

/** Length-prefixed (u32 big-endian) concatenation: no two different lists give the same bytes. */
export function lengthPrefixed(...parts: (string | Uint8Array)[]): Buffer {
  const bufs: Buffer[] = [];
  for (const p of parts) {
    const b = typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    bufs.push(len, b);
  }
  return Buffer.concat(bufs);
}

const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");
const SPKI_X25519 = Buffer.from("302a300506032b656e032100", "hex");

/**
 * X25519(scalar, u) (RFC 7748: the scalar is clamped, which clears the cofactor). Null when `u`
 * is a low-order point (the result would be all zeros) or not 32 bytes.
 */
export function x25519(scalar: Uint8Array, u: Uint8Array): Uint8Array | null {
  if (scalar.byteLength !== 32 || u.byteLength !== 32) return null;
  try {
    const privateKey = createPrivateKey({
      key: Buffer.concat([PKCS8_X25519, scalar]),
      format: "der",
      type: "pkcs8",
    });
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI_X25519, u]), format: "der", type: "spki" });
    const k = diffieHellman({ privateKey, publicKey });
    return k.some((b) => b !== 0) ? new Uint8Array(k) : null;
  } catch {
    return null; // refused as a low-order point
  }
}

/**
 * A fresh scalar and its share Y = X25519(y, G). A clamped scalar times a point of large order is
 * never zero; only a low-order generator (a secret hashing to one of 8 points) fails.
 */
export function newShare(generator: Uint8Array): { scalar: Uint8Array; share: Uint8Array } {
  const scalar = new Uint8Array(randomBytes(32));
  const share = x25519(scalar, generator);
  if (!share) throw new Error("the generator is a low-order point");
  return { scalar, share };
}
