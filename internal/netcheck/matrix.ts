/**
 * The pair matrix (pure): which (source, destination) pairs a mode covers, which addresses and
 * protocols each pair is probed with, and which pairs nobody is supposed to carry (skipped, with
 * the reason) — so a healthy network checks all green instead of drowning real failures in noise.
 */
import { dnsQuery, printfEscape } from "./dns.ts";
import type {
  CheckMode,
  CheckOptions,
  ClusterInfo,
  Endpoint,
  Family,
  Inventory,
  Pair,
  ProbeSpec,
  SkippedPair,
} from "./types.ts";

export function pairKey(src: string, dst: string): string {
  return `${src}>${dst}`;
}

export function modeKinds(mode: CheckMode): { src: Endpoint["kind"]; dst: Endpoint["kind"] } {
  switch (mode) {
    case "pod":
      return { src: "pod", dst: "pod" };
    case "node":
      return { src: "node", dst: "node" };
    case "node-to-pod":
      return { src: "node", dst: "pod" };
    case "pod-to-node":
      return { src: "pod", dst: "node" };
  }
}

function clusterFamilies(c: ClusterInfo | undefined): Family[] {
  if (!c) return [4, 6];
  if (c.ipFamily === "ipv4") return [4];
  if (c.ipFamily === "ipv6") return [6];
  return [4, 6];
}

/** The address `viewer` (a cluster) uses to reach `dst` in `family`. */
export function addressFor(dst: Endpoint, viewerCluster: string, family: Family): string | undefined {
  if (family === 6) return dst.ipv6;
  if (dst.kind === "pod" && dst.cluster !== viewerCluster && dst.globalIPv4) return dst.globalIPv4;
  return dst.ipv4;
}

/** Whether a node has underlay connectivity to other clusters (gateway clusters: only gateways). */
function crossUnderlay(n: Endpoint, c: ClusterInfo | undefined): boolean {
  return c?.networkType !== "gateway" || n.gatewayCandidate === true;
}

/** Why nobody carries src → dst (undefined: the pair must work). */
export function notExpected(
  src: Endpoint,
  dst: Endpoint,
  clusters: Map<string, ClusterInfo>,
): string | undefined {
  if (src.cluster === dst.cluster) return undefined;
  const sc = clusters.get(src.cluster);
  const dc = clusters.get(dst.cluster);
  if (dst.kind === "node") {
    if (src.kind === "pod" && !sc?.podEgressSNAT) {
      return `pod → node of another cluster is not carried by Kosmos (it needs the CNI's egress SNAT; cluster ${src.cluster} has none)`;
    }
    const srcNode = src.kind === "node" ? src : undefined;
    if (srcNode && !crossUnderlay(srcNode, sc)) {
      return `${src.id} is not a gateway of gateway-mode cluster ${src.cluster}: it has no underlay path to other clusters`;
    }
    if (!crossUnderlay(dst, dc)) {
      return `${dst.id} is not a gateway of gateway-mode cluster ${dst.cluster}: other clusters cannot reach its underlay`;
    }
  }
  return undefined;
}

function hash16(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return (h & 0xfffe) + 1;
}

/** DNS query id used for a probe (deterministic, so a result file can be re-interpreted). */
export function dnsId(key: string, ip: string): number {
  return hash16(`${key}|${ip}`);
}

function probesFor(
  src: Endpoint,
  dst: Endpoint,
  key: string,
  opts: CheckOptions,
  clusters: Map<string, ClusterInfo>,
): ProbeSpec[] {
  const fams = clusterFamilies(clusters.get(src.cluster)).filter(
    (f) => clusterFamilies(clusters.get(dst.cluster)).includes(f) && opts.families.includes(f),
  );
  // The source needs an address of the family to send from.
  const srcHas = (f: Family) => (f === 4 ? src.ipv4 : src.ipv6) !== undefined;
  const out: ProbeSpec[] = [];
  for (const family of fams) {
    if (!srcHas(family)) continue;
    const ip = addressFor(dst, src.cluster, family);
    if (!ip) continue;
    for (const proto of opts.protocols) {
      if (proto === "icmp") {
        out.push({ proto, ip, family, ...(opts.packetSize ? { size: opts.packetSize } : {}) });
      } else if (proto === "tcp") {
        if (dst.tcp?.families.includes(family)) {
          out.push({
            proto,
            ip,
            family,
            port: dst.tcp.port,
            ...(dst.tcp.expect ? { expect: dst.tcp.expect } : {}),
          });
        }
      } else if (proto === "udp") {
        if (dst.udp)
          out.push({
            proto,
            ip,
            family,
            port: dst.udp.port,
            ...(dst.udp.expect ? { expect: dst.udp.expect } : {}),
          });
      } else if (proto === "dns") {
        if (dst.dnsPort) {
          const q = printfEscape(dnsQuery(opts.dnsName, dnsId(key, ip)));
          out.push({ proto, ip, family, port: dst.dnsPort, expect: q });
        }
      }
    }
  }
  return out;
}

export interface Matrix {
  pairs: Pair[];
  skipped: SkippedPair[];
}

/** Every pair of the mode (ordered, src ≠ dst), restricted by --src/--dst clusters. */
export function buildMatrix(inv: Inventory, opts: CheckOptions, only?: Set<string>): Matrix {
  const clusters = new Map(inv.clusters.map((c) => [c.name, c]));
  const kinds = modeKinds(opts.mode);
  const srcs = inv.endpoints.filter(
    (e) => e.kind === kinds.src && (!opts.srcClusters || opts.srcClusters.includes(e.cluster)),
  );
  const dsts = inv.endpoints.filter(
    (e) => e.kind === kinds.dst && (!opts.dstClusters || opts.dstClusters.includes(e.cluster)),
  );
  const pairs: Pair[] = [];
  const skipped: SkippedPair[] = [];
  for (const src of srcs) {
    for (const dst of dsts) {
      if (src.id === dst.id) continue;
      if (!opts.intraCluster && src.cluster === dst.cluster) continue;
      const key = pairKey(src.id, dst.id);
      if (only && !only.has(key)) continue;
      const why = notExpected(src, dst, clusters);
      if (why) {
        skipped.push({ src: src.id, dst: dst.id, reason: why });
        continue;
      }
      const probes = probesFor(src, dst, key, opts, clusters);
      if (probes.length === 0) {
        skipped.push({ src: src.id, dst: dst.id, reason: "no common address family / protocol to probe" });
        continue;
      }
      pairs.push({ key, src, dst, cross: src.cluster !== dst.cluster, probes });
    }
  }
  return { pairs, skipped };
}
