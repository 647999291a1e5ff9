/**
 * Multi-cluster services: the ClusterSetIP DNAT intent (docs/services.md). For every imported
 * ClusterSetIP service and each of its ports, the endpoints that may take a new connection: ready,
 * on a node gossip does not declare dead or gone (raw SWIM states: an endpoint leaves within the
 * failure-detection time, no API server involved), with the target port of the same name, and the
 * address that reaches the pod from this cluster (another cluster's pod IP mapped to its global
 * CIDR, as the imported EndpointSlices carry it).
 */
import type { ServiceVip } from "../../dataplane/index.ts";
import {
  type AddressFamily,
  type ServiceEndpointsRecord,
  type ServiceImportRecord,
  tryParseIp,
  formatIp,
} from "../../topology/index.ts";
import type { GlobalMap } from "../cluster.ts";
import { cmp, type PlanContext } from "../context.ts";

/** `addr` as reached from another cluster: inside a mapped local CIDR → the same offset in the global one. */
export function viaGlobal(addr: string, globals: GlobalMap[]): string {
  const ip = tryParseIp(addr);
  if (!ip) return addr;
  for (const g of globals) {
    if (g.key.family === ip.family && ip.value >= g.key.base && ip.value <= g.key.last) {
      return formatIp(ip.family, g.value.base + (ip.value - g.key.base));
    }
  }
  return addr;
}

function targetPort(
  port: ServiceImportRecord["ports"][number],
  rec: ServiceEndpointsRecord,
): number | undefined {
  const same = rec.ports.filter((p) => p.protocol === port.protocol);
  if (port.name) return same.find((p) => p.name === port.name)?.port;
  return (same.find((p) => !p.name) ?? (same.length === 1 ? same[0] : undefined))?.port;
}

export function planServices(ctx: PlanContext): ServiceVip[] {
  const t = ctx.input.topology;
  if (!t.serviceImports?.length) return [];
  const live = ctx.input.electionMembers ?? ctx.input.members ?? {};
  const gone = (node: string | undefined): boolean =>
    node !== undefined && node !== ctx.selfName && (live[node] === "dead" || live[node] === "left");
  const bySvc = new Map<string, ServiceEndpointsRecord[]>();
  for (const r of t.serviceEndpoints ?? []) {
    const k = `${r.namespace}/${r.service}`;
    bySvc.set(k, [...(bySvc.get(k) ?? []), r]);
  }
  const self = ctx.selfCtx.cluster.name;
  const out: ServiceVip[] = [];
  for (const si of t.serviceImports) {
    if (si.type !== "ClusterSetIP") continue;
    const recs = (bySvc.get(si.name) ?? []).sort((a, b) => cmp(a.name, b.name));
    for (const vip of si.ips) {
      const ip = tryParseIp(vip);
      if (!ip) continue;
      const family = ip.family as AddressFamily;
      for (const port of si.ports) {
        const endpoints: ServiceVip["endpoints"] = [];
        for (const rec of recs) {
          if ((rec.addressType === "IPv4" ? 4 : 6) !== family) continue;
          const tp = targetPort(port, rec);
          if (tp === undefined) continue;
          const globals = rec.cluster === self ? [] : (ctx.clusters.get(rec.cluster)?.globals ?? []);
          for (const e of rec.endpoints) {
            if (!e.ready || gone(e.node) || !e.addresses[0]) continue;
            endpoints.push({ address: viaGlobal(e.addresses[0], globals), port: tp });
          }
        }
        out.push({
          name: `${si.name}:${port.name ?? port.port}`,
          vip,
          family,
          protocol: port.protocol.toLowerCase() as ServiceVip["protocol"],
          port: port.port,
          endpoints,
          ...(si.sessionAffinity === "ClientIP"
            ? { affinitySeconds: si.affinityTimeoutSeconds ?? 10800 }
            : {}),
        });
      }
    }
  }
  for (const v of out) v.endpoints.sort((a, b) => cmp(a.address, b.address) || a.port - b.port);
  return out.sort((a, b) => cmp(a.vip, b.vip) || cmp(a.protocol, b.protocol) || a.port - b.port);
}
