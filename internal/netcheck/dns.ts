/**
 * DNS probe encoding (pure): the probe script sends a query given as a printf escape string and
 * reports the first 4 bytes of the reply (id + flags) in hex; we check the id and read the rcode.
 */

const RCODES = ["NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"];

/** A DNS query for `name` (type A, recursion desired), as bytes. */
export function dnsQuery(name: string, id: number): Uint8Array {
  const labels = name.replace(/\.$/, "").split(".").filter(Boolean);
  for (const l of labels) {
    if (l.length > 63 || !/^[A-Za-z0-9_-]+$/.test(l)) throw new Error(`bad DNS label "${l}" in ${name}`);
  }
  const out = [(id >> 8) & 0xff, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
  for (const l of labels) out.push(l.length, ...[...l].map((c) => c.charCodeAt(0)));
  out.push(0, 0, 1, 0, 1);
  return new Uint8Array(out);
}

/** `\xHH` escapes for the probe script's printf (no spaces, so it fits a whitespace-split line). */
export function printfEscape(bytes: Uint8Array): string {
  return [...bytes].map((b) => `\\x${b.toString(16).padStart(2, "0")}`).join("");
}

/** Interpret the script's "reply xx xx xx xx" detail for a query with `id`. */
export function interpretDnsReply(detail: string, id: number): { ok: boolean; detail: string } {
  const m = /reply\s+([0-9a-f]{2})\s+([0-9a-f]{2})\s+([0-9a-f]{2})\s+([0-9a-f]{2})/i.exec(detail);
  if (!m) return { ok: false, detail: `no DNS reply (${detail})` };
  const got = Number.parseInt(`${m[1]}${m[2]}`, 16);
  const flags1 = Number.parseInt(m[3] ?? "0", 16);
  const flags2 = Number.parseInt(m[4] ?? "0", 16);
  if (got !== id) return { ok: false, detail: `DNS reply with id ${got}, expected ${id}` };
  if ((flags1 & 0x80) === 0) return { ok: false, detail: "answer is not a DNS response (QR bit clear)" };
  const rcode = flags2 & 0x0f;
  const name = RCODES[rcode] ?? `rcode ${rcode}`;
  // NXDOMAIN still proves the DNS server answered; SERVFAIL/REFUSED mean it is unusable.
  return { ok: rcode === 0 || rcode === 3, detail: `DNS answered ${name}` };
}
