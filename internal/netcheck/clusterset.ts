/**
 * Pure parts of `kosmosctl check -p dns` on clusterset names (docs/check.md "Clusterset names"):
 * what each `<svc>.<ns>.svc.clusterset.local` must answer — from a cluster's ServiceImports and
 * imported EndpointSlices (its API server), or from an agent's replica (the zone its DNS serves) —
 * the DNS queries (dns-packet), and the verdict on a pod resolver's reply: ok, or the hop that failed
 * (no answer, NXDOMAIN, another rcode, wrong address, stale, truncated).
 */
import * as dnsPacket from "dns-packet";
import type { Zone } from "../dns/index.ts";

export type QType = "A" | "AAAA";

/** One clusterset name and the addresses it must answer, per record type. */
export interface ClustersetName {
  namespace: string;
  service: string;
  /** `<svc>.<ns>.svc.clusterset.local` */
  name: string;
  headless: boolean;
  want: Record<QType, string[]>;
}

/** Where the expected answers of a cluster (or a node) came from. */
export type ExpectedSource =
  | { kind: "api"; cluster: string }
  | { kind: "replica"; cluster: string; node: string; why: string };

/** The parts of a multicluster.x-k8s.io ServiceImport this check reads. */
export interface ServiceImportLike {
  metadata: { name: string; namespace?: string };
  spec?: { type?: string; ips?: string[] };
}

/** The parts of a discovery.k8s.io EndpointSlice this check reads. */
export interface EndpointSliceLike {
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  endpoints?: Array<{ addresses?: string[]; conditions?: { ready?: boolean } }>;
}

const SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name";
const IMPORTED_BY = { label: "endpointslice.kubernetes.io/managed-by", value: "mcs.kosmos.io" };

export const clustersetName = (service: string, namespace: string): string =>
  `${service}.${namespace}.svc.clusterset.local`;

function split(addrs: Iterable<string>): Record<QType, string[]> {
  const all = [...new Set(addrs)].sort();
  return { A: all.filter((a) => !a.includes(":")), AAAA: all.filter((a) => a.includes(":")) };
}

const byName = (a: ClustersetName, b: ClustersetName): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : 0;

/**
 * From a cluster's API objects: a ClusterSetIP import answers exactly its `spec.ips`; a Headless
 * one the ready addresses (unset `ready` is ready) of the EndpointSlices Kosmos imported for it.
 */
export function expectedFromApi(imports: ServiceImportLike[], slices: EndpointSliceLike[]): ClustersetName[] {
  return imports
    .map((si) => {
      const ns = si.metadata.namespace ?? "default";
      const svc = si.metadata.name;
      const headless = si.spec?.type === "Headless";
      const addrs = headless
        ? slices
            .filter(
              (s) =>
                (s.metadata.namespace ?? "default") === ns &&
                s.metadata.labels?.[SERVICE_NAME_LABEL] === svc &&
                s.metadata.labels?.[IMPORTED_BY.label] === IMPORTED_BY.value,
            )
            .flatMap((s) => s.endpoints ?? [])
            .filter((e) => e.conditions?.ready !== false)
            .flatMap((e) => e.addresses ?? [])
        : (si.spec?.ips ?? []);
      return { namespace: ns, service: svc, name: clustersetName(svc, ns), headless, want: split(addrs) };
    })
    .sort(byName);
}

/** From an agent's zone (its replica and SWIM view): what its DNS server answers. */
export function expectedFromZone(zone: Zone): ClustersetName[] {
  return [...zone.services.values()]
    .map((s) => ({
      namespace: s.namespace,
      service: s.service,
      name: clustersetName(s.service, s.namespace),
      headless: s.headless,
      want: split(s.headless ? s.endpoints.flatMap((e) => e.addresses) : s.ips),
    }))
    .sort(byName);
}

/** The record types to ask for a name: A always, AAAA when the import has IPv6. */
export function queryTypes(n: ClustersetName): QType[] {
  return n.want.AAAA.length > 0 ? ["A", "AAAA"] : ["A"];
}

/** A recursive query for `name`/`type` with `id`, as the wire bytes in lowercase hex. */
export function encodeQuery(name: string, type: QType, id: number): string {
  return dnsPacket
    .encode({
      type: "query",
      id,
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: "IN" }],
    })
    .toString("hex");
}

export type LookupHop =
  | "no answer"
  | "NXDOMAIN"
  | "rcode"
  | "wrong address"
  | "stale"
  | "dead node"
  | "truncated";

export interface LookupVerdict {
  ok: boolean;
  /** The addresses the reply carried (of the type asked), sorted. */
  got: string[];
  hop?: LookupHop;
  detail: string;
}

/** Hex bytes as the probe prints them (`od -An -tx1`: pairs separated by spaces and newlines). */
export function hexBytes(text: string): Buffer | undefined {
  const pairs = text.trim().split(/\s+/).filter(Boolean);
  if (pairs.length === 0 || pairs.some((p) => !/^[0-9a-f]{2}$/i.test(p))) return undefined;
  return Buffer.from(pairs.join(""), "hex");
}

const sameSet = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);
const list = (a: string[]): string => (a.length ? a.join(",") : "none");

/**
 * The verdict on a resolver's reply to our query `id` for `type`: the addresses of that type in the
 * answer section must be exactly `want`. `stale` (optional): what the agent's replica expects when
 * `want` came from the API server — a reply equal to it (and not to `want`) is the agent serving a
 * replica that lags behind the API server — unless the same replica without the SWIM view
 * (`withDeadNodes`) equals `want`: then the agent left out the endpoints of nodes gossip declares
 * dead, as designed (`dead node`).
 */
export function interpretReply(
  reply: Buffer | undefined,
  probeDetail: string,
  o: { id: number; type: QType; want: string[]; stale?: string[]; withDeadNodes?: string[] },
): LookupVerdict {
  if (!reply) return { ok: false, got: [], hop: "no answer", detail: probeDetail || "no reply" };
  let p: dnsPacket.DecodedPacket;
  try {
    p = dnsPacket.decode(reply);
  } catch (e) {
    return { ok: false, got: [], hop: "no answer", detail: `malformed reply: ${(e as Error).message}` };
  }
  if (p.id !== o.id)
    return { ok: false, got: [], hop: "no answer", detail: `reply with id ${p.id}, expected ${o.id}` };
  if (p.type !== "response")
    return { ok: false, got: [], hop: "no answer", detail: "not a DNS response (QR bit clear)" };
  // dns-packet decodes the rcode as a name (its type declarations leave the field out).
  const rcode = (p as dnsPacket.DecodedPacket & { rcode?: string }).rcode ?? "NOERROR";
  if (rcode === "NXDOMAIN")
    return { ok: false, got: [], hop: "NXDOMAIN", detail: "NXDOMAIN: the resolver does not know the name" };
  if (rcode !== "NOERROR")
    return { ok: false, got: [], hop: "rcode", detail: `the resolver answered ${rcode}` };
  const got = [
    ...new Set(
      (p.answers ?? [])
        .filter((a): a is dnsPacket.StringAnswer => a.type === o.type)
        .map((a) => String(a.data)),
    ),
  ].sort();
  const want = [...new Set(o.want)].sort();
  if (sameSet(got, want)) return { ok: true, got, detail: `answered ${list(got)}` };
  if (p.flag_tc && got.length === 0)
    return { ok: false, got, hop: "truncated", detail: "reply truncated (TC): too big for UDP" };
  const stale = o.stale ? [...new Set(o.stale)].sort() : undefined;
  const unfiltered = o.withDeadNodes ? [...new Set(o.withDeadNodes)].sort() : undefined;
  if (stale && !sameSet(stale, want) && sameSet(got, stale) && unfiltered && sameSet(unfiltered, want))
    return {
      ok: false,
      got,
      hop: "dead node",
      detail: `answered ${list(got)}: the agent leaves out ${list(want.filter((a) => !got.includes(a)))}, on nodes gossip declares dead; the API server lists them`,
    };
  if (stale && !sameSet(stale, want) && sameSet(got, stale))
    return {
      ok: false,
      got,
      hop: "stale",
      detail: `answered ${list(got)}, the agent's replica; the API server says ${list(want)}`,
    };
  return { ok: false, got, hop: "wrong address", detail: `answered ${list(got)}, want ${list(want)}` };
}
