/**
 * IPsec key material, derived (never gossiped): both ends compute the same SPI and key for a
 * direction from the installation secret, the ordered node pair and the key epoch (HKDF-SHA256).
 */
import { createHash, hkdfSync } from "node:crypto";

/** xfrm policy priority of Kosmos policies. */
export const KOSMOS_XFRM_PRIORITY = 100;
/** ICV length of rfc4106(gcm(aes)). */
export const KOSMOS_XFRM_ICV_BITS = 128;
const SALT = "kosmos-ipsec-v1";

function u32(label: string): number {
  const d = createHash("sha256").update(label).digest();
  return d.readUInt32BE(0);
}

/**
 * reqid shared by the policies and states between two nodes (independent of the order). It lies in
 * the range the dataplane treats as Kosmos-owned (0x4b000000-0x4bffffff, KOSMOS_REQID_MIN/MAX in
 * dataplane/read.ts): uninstall and the removal of a departed peer find them without a plan.
 */
export function ipsecReqid(a: string, b: string): number {
  const [x, y] = a < b ? [a, b] : [b, a];
  return (0x4b000000 | (u32(`reqid|${x}|${y}`) & 0x00ffffff)) >>> 0;
}

/** SPI of the state carrying traffic from `src` to `dst` (never below 256: reserved range). */
export function ipsecSpi(src: string, dst: string, epoch: number): number {
  return (u32(`spi|${src}>${dst}|${epoch}`) | 0x100) >>> 0;
}

/** AEAD key (rfc4106: 16-byte key + 4-byte salt) for traffic from `src` to `dst`, as "0x..." hex. */
export function ipsecKey(secret: Uint8Array, src: string, dst: string, epoch: number): string {
  const k = hkdfSync("sha256", secret, SALT, `key|${src}>${dst}|${epoch}`, 20);
  return `0x${Buffer.from(k).toString("hex")}`;
}
