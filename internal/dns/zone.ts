/**
 * Pure: the `clusterset.local` zone as one agent sees it, built from its replica (service_imports,
 * service_endpoints, clusters) and the SWIM view. Endpoint addresses are the ones that reach the
 * pods from this node's cluster (another cluster's pod IPs through its global CIDRs), and endpoints
 * that are not ready or sit on a node gossip declares dead are left out — the same rules as the
 * ClusterSetIP backends (internal/planner/steps/services.ts).
 */
import {
  type MemberState,
  parseCidr,
  type ServiceEndpointsRecord,
  type Topology,
  formatIp,
  tryParseIp,
} from "../topology/index.ts";

export const ZONE = "clusterset.local";

export interface ZonePort {
  name?: string;
  port: number;
  protocol: "TCP" | "UDP" | "SCTP";
}

export interface ZoneEndpoint {
  cluster: string;
  hostname?: string;
  addresses: string[];
  /** Target ports of this endpoint's slice, by name. */
  ports: ZonePort[];
}

export interface ZoneService {
  namespace: string;
  service: string;
  headless: boolean;
  /** ClusterSetIP(s); empty when headless. */
  ips: string[];
  ports: ZonePort[];
  endpoints: ZoneEndpoint[];
}

export interface Zone {
  /** `<svc>.<ns>` → service. */
  services: Map<string, ZoneService>;
}

type Globals = Array<{ lo: bigint; hi: bigint; to: bigint; family: 4 | 6 }>;

function globalsOf(m: Record<string, string>): Globals {
  const out: Globals = [];
  for (const [k, v] of Object.entries(m)) {
    try {
      const a = parseCidr(k);
      const b = parseCidr(v);
      if (a.family === b.family && a.len === b.len)
        out.push({ lo: a.base, hi: a.last, to: b.base, family: a.family });
    } catch {
      /* the topology validator reports bad CIDRs */
    }
  }
  return out;
}

function reach(addr: string, g: Globals): string {
  const ip = tryParseIp(addr);
  if (!ip) return addr;
  const m = g.find((x) => x.family === ip.family && ip.value >= x.lo && ip.value <= x.hi);
  return m ? formatIp(ip.family, m.to + (ip.value - m.lo)) : addr;
}

export function buildZone(
  t: Pick<Topology, "clusters" | "serviceImports" | "serviceEndpoints">,
  selfCluster: string,
  members: Record<string, MemberState> = {},
): Zone {
  const globals = new Map(t.clusters.map((c) => [c.name, globalsOf(c.globalCIDRs)]));
  const eps = new Map<string, ServiceEndpointsRecord[]>();
  for (const r of t.serviceEndpoints ?? []) {
    const k = `${r.namespace}/${r.service}`;
    eps.set(k, [...(eps.get(k) ?? []), r]);
  }
  const services = new Map<string, ZoneService>();
  for (const si of t.serviceImports ?? []) {
    const endpoints: ZoneEndpoint[] = [];
    for (const rec of (eps.get(si.name) ?? []).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const g = rec.cluster === selfCluster ? [] : (globals.get(rec.cluster) ?? []);
      for (const e of rec.endpoints) {
        const state = e.node ? members[e.node] : undefined;
        if (!e.ready || state === "dead" || state === "left") continue;
        endpoints.push({
          cluster: rec.cluster,
          ...(e.hostname ? { hostname: e.hostname.toLowerCase() } : {}),
          addresses: e.addresses.map((a) => reach(a, g)),
          ports: rec.ports,
        });
      }
    }
    services.set(`${si.service}.${si.namespace}`, {
      namespace: si.namespace,
      service: si.service,
      headless: si.type === "Headless",
      ips: si.ips,
      ports: si.ports,
      endpoints,
    });
  }
  return { services };
}
