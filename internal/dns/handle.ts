/**
 * Pure handling of one DNS message (wire bytes in → wire bytes out, or a forward / a drop), with
 * the dns-packet library doing the wire format. Malformed queries get FORMERR when their header can
 * be read (else they are dropped); queries that are not exactly one question of class IN get
 * FORMERR / NOTIMP; answers too big for UDP come back truncated (TC) so the client retries on TCP.
 */
import * as dnsPacket from "dns-packet";
import { type DnsRecord, resolve } from "./resolver.ts";
import type { Zone } from "./zone.ts";

export const MAX_UDP_QUERY = 512;
export const MAX_UDP_ANSWER = 512;

const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
const QR = 0x8000;
const RD = 0x0100;

export type Outcome =
  | { kind: "reply"; bytes: Buffer; rcode: keyof typeof RCODE }
  | { kind: "forward"; id: number }
  | { kind: "drop"; reason: string };

/** A header-only reply (FORMERR, SERVFAIL...) echoing the query's id and RD bit. */
export function errorReply(query: Buffer, rcode: keyof typeof RCODE): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(query.readUInt16BE(0), 0);
  out.writeUInt16BE(QR | (query.readUInt16BE(2) & RD) | RCODE[rcode], 2);
  return out;
}

function toAnswer(r: DnsRecord): dnsPacket.Answer {
  if (r.type === "SRV") return { type: "SRV", name: r.name, ttl: r.ttl, class: "IN", data: r.data };
  return { type: r.type, name: r.name, ttl: r.ttl, class: "IN", data: r.data };
}

export function handleQuery(buf: Buffer, zone: Zone, transport: "udp" | "tcp"): Outcome {
  if (buf.length < 12) return { kind: "drop", reason: "short" };
  if (transport === "udp" && buf.length > MAX_UDP_QUERY)
    return { kind: "reply", bytes: errorReply(buf, "FORMERR"), rcode: "FORMERR" };
  if (buf.readUInt16BE(2) & QR) return { kind: "drop", reason: "not a query" };
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(buf);
  } catch {
    return { kind: "reply", bytes: errorReply(buf, "FORMERR"), rcode: "FORMERR" };
  }
  const opcode = (buf.readUInt16BE(2) >> 11) & 0xf;
  if (opcode !== 0) return { kind: "reply", bytes: errorReply(buf, "NOTIMP"), rcode: "NOTIMP" };
  const question = q.questions?.[0];
  if (!question || q.questions!.length !== 1)
    return { kind: "reply", bytes: errorReply(buf, "FORMERR"), rcode: "FORMERR" };
  const r = resolve(zone, question.name, question.type);
  if (r.kind === "forward") return { kind: "forward", id: q.id ?? 0 };
  const flags =
    dnsPacket.AUTHORITATIVE_ANSWER |
    dnsPacket.RECURSION_AVAILABLE |
    (q.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) |
    RCODE[r.rcode];
  const reply: dnsPacket.Packet = {
    type: "response",
    id: q.id,
    flags,
    questions: [question],
    answers: r.answers.map(toAnswer),
  };
  let bytes = dnsPacket.encode(reply);
  if (transport === "udp" && bytes.length > MAX_UDP_ANSWER) {
    bytes = dnsPacket.encode({ ...reply, answers: [], flags: flags | dnsPacket.TRUNCATED_RESPONSE });
  }
  return { kind: "reply", bytes, rcode: r.rcode };
}
