/**
 * Pure: the MCS state as topology records, which the kosmos-controller seeds into the agents and
 * the agents gossip (tables service_imports, service_endpoints). Endpoint addresses stay the source
 * cluster's own; each agent maps them with the source cluster's globalCIDRs.
 */
import { clusterNodeName } from "../controller/index.ts";
import type { ServiceEndpointsRecord, ServiceImportRecord } from "../topology/index.ts";
import type { McsState } from "./controller.ts";

export function topologyRecords(s: McsState): {
  serviceImports: ServiceImportRecord[];
  serviceEndpoints: ServiceEndpointsRecord[];
} {
  const serviceImports: ServiceImportRecord[] = [];
  const serviceEndpoints: ServiceEndpointsRecord[] = [];
  for (const i of s.plan.imports) {
    const ip = s.ips.get(`${i.namespace}/${i.name}`);
    serviceImports.push({
      name: `${i.namespace}/${i.name}`,
      namespace: i.namespace,
      service: i.name,
      type: i.type,
      ips: i.type === "ClusterSetIP" && ip ? [ip] : [],
      ports: i.ports.map((p) => ({
        ...(p.name ? { name: p.name } : {}),
        port: p.port,
        protocol: p.protocol,
        ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      })),
      sessionAffinity: i.sessionAffinity,
      ...(i.sessionAffinityTimeout !== undefined ? { affinityTimeoutSeconds: i.sessionAffinityTimeout } : {}),
      clusters: i.clusters,
    });
    for (const sl of i.slices) {
      const endpoints = sl.endpoints
        .filter((e) => e.addresses.length > 0)
        .slice(0, 1000)
        .map((e) => ({
          addresses: e.addresses.slice(0, 100),
          // EndpointSlice semantics: unset `ready` means ready.
          ready: e.conditions?.ready !== false,
          ...(e.hostname ? { hostname: e.hostname } : {}),
          ...(e.nodeName ? { node: clusterNodeName(sl.cluster, e.nodeName) } : {}),
        }));
      serviceEndpoints.push({
        name: `${i.namespace}/${i.name}/${sl.cluster}/${sl.slice}`,
        namespace: i.namespace,
        service: i.name,
        cluster: sl.cluster,
        slice: sl.slice,
        addressType: sl.addressType,
        ports: sl.ports
          .filter((p): p is typeof p & { port: number } => typeof p.port === "number")
          .map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? "TCP" })),
        endpoints,
      });
    }
  }
  return { serviceImports, serviceEndpoints };
}
