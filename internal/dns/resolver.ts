/**
 * Pure resolver for `clusterset.local` (KEP-1645 DNS): a question → records from the Zone, or
 * "forward" for names outside the zone.
 *
 *   <svc>.<ns>.svc.clusterset.local                   A/AAAA: the ClusterSetIP; headless: every
 *                                                     ready endpoint's address
 *   <hostname>.<cluster>.<svc>.<ns>.svc.clusterset.local   A/AAAA of that headless endpoint
 *   _<port>._<proto>.<svc>.<ns>.svc.clusterset.local  SRV per named port (headless: one per endpoint
 *                                                     with a hostname, its own target port)
 *
 * A name in the zone that does not exist is NXDOMAIN; one that exists without records of the
 * type asked is NOERROR with no answers (NODATA).
 */
import { type Zone, ZONE, type ZoneService } from "./zone.ts";

export const TTL = 5;

export type RType = "A" | "AAAA" | "SRV" | "TXT" | "ANY" | string;

export type DnsRecord =
  | { name: string; type: "A" | "AAAA"; ttl: number; data: string }
  | {
      name: string;
      type: "SRV";
      ttl: number;
      data: { priority: number; weight: number; port: number; target: string };
    };

export type Resolution =
  | { kind: "forward" }
  | { kind: "answer"; rcode: "NOERROR" | "NXDOMAIN"; answers: DnsRecord[] };

const SUFFIX = `.svc.${ZONE}`;
const fam = (a: string): "A" | "AAAA" => (a.includes(":") ? "AAAA" : "A");

function addressRecords(name: string, type: RType, addrs: string[]): DnsRecord[] {
  const want = type === "ANY" ? ["A", "AAAA"] : [type];
  return [...new Set(addrs)]
    .filter((a) => want.includes(fam(a)))
    .sort()
    .map((a) => ({ name, type: fam(a), ttl: TTL, data: a }));
}

function srv(name: string, svc: ZoneService, portName: string, proto: string, base: string): DnsRecord[] {
  const port = svc.ports.find((p) => p.name === portName && p.protocol.toLowerCase() === proto);
  if (!port) return [];
  if (!svc.headless) {
    return [
      { name, type: "SRV", ttl: TTL, data: { priority: 0, weight: 100, port: port.port, target: base } },
    ];
  }
  const out: DnsRecord[] = [];
  for (const e of svc.endpoints) {
    if (!e.hostname) continue;
    const tp =
      e.ports.find((p) => p.name === portName && p.protocol.toLowerCase() === proto)?.port ?? port.port;
    out.push({
      name,
      type: "SRV",
      ttl: TTL,
      data: { priority: 0, weight: 100, port: tp, target: `${e.hostname}.${e.cluster}.${base}` },
    });
  }
  return out;
}

export function resolve(zone: Zone, qname: string, qtype: RType): Resolution {
  const name = qname.toLowerCase().replace(/\.$/, "");
  if (name !== ZONE && !name.endsWith(`.${ZONE}`)) return { kind: "forward" };
  const nx: Resolution = { kind: "answer", rcode: "NXDOMAIN", answers: [] };
  const nodata: Resolution = { kind: "answer", rcode: "NOERROR", answers: [] };
  if (!name.endsWith(SUFFIX)) return name === ZONE || name === `svc.${ZONE}` ? nodata : nx;
  const labels = name.slice(0, -SUFFIX.length).split(".");
  const ok = (answers: DnsRecord[]): Resolution => ({ kind: "answer", rcode: "NOERROR", answers });
  if (labels.length === 1) {
    // <ns>.svc.clusterset.local: exists when some service lives in the namespace
    return [...zone.services.values()].some((s) => s.namespace === labels[0]) ? nodata : nx;
  }
  const svcLabels = labels.slice(-2);
  const base = `${svcLabels.join(".")}${SUFFIX}`;
  const svc = zone.services.get(svcLabels.join("."));
  if (!svc) return nx;
  const rest = labels.slice(0, -2);
  if (rest.length === 0) {
    if (qtype === "SRV") return nodata;
    const addrs = svc.headless ? svc.endpoints.flatMap((e) => e.addresses) : svc.ips;
    return ok(addressRecords(name, qtype, addrs));
  }
  if (rest.length === 2 && rest[0]!.startsWith("_") && rest[1]!.startsWith("_")) {
    const answers = srv(name, svc, rest[0]!.slice(1), rest[1]!.slice(1), base);
    if (answers.length === 0) return nx;
    return qtype === "SRV" || qtype === "ANY" ? ok(answers) : nodata;
  }
  if (rest.length === 2 && svc.headless) {
    const [host, cluster] = rest as [string, string];
    const eps = svc.endpoints.filter((e) => e.hostname === host && e.cluster === cluster);
    if (eps.length === 0) return nx;
    return ok(
      addressRecords(
        name,
        qtype,
        eps.flatMap((e) => e.addresses),
      ),
    );
  }
  if (rest.length === 1 && svc.headless && svc.endpoints.some((e) => e.cluster === rest[0])) return nodata;
  return nx;
}
