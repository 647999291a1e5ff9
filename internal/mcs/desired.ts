/**
 * Pure: the MCS objects one cluster should hold, from the clusterset plan. ServiceImports carry the
 * ClusterSetIP; imported EndpointSlices carry addresses that reach the pods from this cluster —
 * a source cluster's pod IPs translated to its global CIDRs (1:1 by prefix) when it maps them.
 */
import { createHash } from "node:crypto";
import { type Cidr, formatIp, tryParseCidr, tryParseIp } from "../topology/index.ts";
import type { ImportPlan, McsPlan } from "./plan.ts";
import {
  type EndpointSliceObject,
  LABEL_MANAGED,
  LABEL_MANAGED_BY,
  LABEL_SERVICE_NAME,
  LABEL_SOURCE_CLUSTER,
  MANAGED_BY,
  MCS_GROUP_VERSION,
  type ServiceImportObject,
} from "./types.ts";

export interface DesiredObjects {
  imports: ServiceImportObject[];
  slices: EndpointSliceObject[];
}

interface GlobalMap {
  local: Cidr;
  global: Cidr;
}

export function parseGlobals(m: Record<string, string>): GlobalMap[] {
  const out: GlobalMap[] = [];
  for (const [l, g] of Object.entries(m)) {
    const local = tryParseCidr(l);
    const global = tryParseCidr(g);
    if (local && global && local.family === global.family && local.len === global.len)
      out.push({ local, global });
  }
  return out;
}

/** The address by which `addr` (a pod IP of the source cluster) is reached from another cluster. */
export function reachableAddress(addr: string, globals: GlobalMap[]): string {
  const ip = tryParseIp(addr);
  if (!ip) return addr;
  for (const g of globals) {
    if (g.local.family === ip.family && ip.value >= g.local.base && ip.value <= g.local.last) {
      return formatIp(ip.family, g.global.base + (ip.value - g.local.base));
    }
  }
  return addr;
}

/** A DNS-1123 subdomain name for the imported slice of one source slice. */
export function importedSliceName(service: string, cluster: string, sourceSlice: string): string {
  const h = createHash("sha256").update(`${cluster}/${sourceSlice}`).digest("hex").slice(0, 10);
  const head = `${service}-${cluster}`.slice(0, 200).replace(/-+$/, "");
  return `${head}-${h}`;
}

function importObject(p: ImportPlan, ip: string | undefined): ServiceImportObject {
  return {
    apiVersion: MCS_GROUP_VERSION,
    kind: "ServiceImport",
    metadata: { name: p.name, namespace: p.namespace, labels: { [LABEL_MANAGED]: "true" } },
    spec: {
      ...(p.type === "ClusterSetIP" && ip ? { ips: [ip] } : {}),
      ports: p.ports,
      type: p.type,
      sessionAffinity: p.sessionAffinity,
      ...(p.sessionAffinityTimeout !== undefined
        ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: p.sessionAffinityTimeout } } }
        : {}),
    },
    status: { clusters: p.clusters.map((cluster) => ({ cluster })) },
  };
}

/**
 * What cluster `self` should hold. `globals` maps each cluster to its global CIDR map; `ips` the
 * ClusterSetIP per `ns/name`.
 */
export function desiredInCluster(
  plan: McsPlan,
  self: string,
  globals: Map<string, GlobalMap[]>,
  ips: Map<string, string>,
): DesiredObjects {
  const imports: ServiceImportObject[] = [];
  const slices: EndpointSliceObject[] = [];
  for (const p of plan.imports) {
    imports.push(importObject(p, ips.get(`${p.namespace}/${p.name}`)));
    for (const s of p.slices) {
      const g = s.cluster === self ? [] : (globals.get(s.cluster) ?? []);
      slices.push({
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: importedSliceName(p.name, s.cluster, s.slice),
          namespace: p.namespace,
          labels: {
            [LABEL_SERVICE_NAME]: p.name,
            [LABEL_SOURCE_CLUSTER]: s.cluster,
            [LABEL_MANAGED_BY]: MANAGED_BY,
            [LABEL_MANAGED]: "true",
          },
        },
        addressType: s.addressType,
        // targetRef names a pod of the source cluster: meaningless here, left out.
        endpoints: s.endpoints.map((e) => ({
          addresses: e.addresses.map((a) => reachableAddress(a, g)),
          ...(e.conditions ? { conditions: e.conditions } : {}),
          ...(e.hostname ? { hostname: e.hostname } : {}),
          ...(e.nodeName ? { nodeName: e.nodeName } : {}),
          ...(e.zone ? { zone: e.zone } : {}),
        })),
        ports: s.ports,
      });
    }
  }
  return { imports, slices };
}
