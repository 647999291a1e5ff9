/**
 * Pure auto-export (upstream's AutoCreateMCS, §1.16.2 of the design): a Service qualifies when its
 * namespace is not reserved and it has the `kosmos.io/auto-create-mcs` annotation (any value) or its
 * namespace starts with an `--auto-mcs-prefix`. Qualifying Services get a ServiceExport labelled
 * `mcs.kosmos.io/auto-created`; only exports with that label are ever deleted (when the Service is
 * gone or no longer qualifies). Upstream deletes hand-made exports of non-qualifying Services when a
 * Cluster is created; here a hand-made export is never touched.
 */
import {
  ANNOTATION_AUTO_MCS,
  LABEL_AUTO_CREATED,
  MCS_GROUP_VERSION,
  type ServiceExportObject,
  type ServiceObject,
} from "./types.ts";

export interface AutoOptions {
  prefixes: string[];
  reserved: string[];
}

export function qualifies(svc: ServiceObject, o: AutoOptions): boolean {
  const ns = svc.metadata.namespace ?? "";
  if (o.reserved.includes(ns) || svc.metadata.deletionTimestamp) return false;
  if (svc.metadata.annotations?.[ANNOTATION_AUTO_MCS] !== undefined) return true;
  return o.prefixes.some((p) => p !== "" && ns.startsWith(p));
}

export interface AutoOps {
  create: ServiceExportObject[];
  delete: { namespace: string; name: string }[];
}

export function planAutoExports(
  services: ServiceObject[],
  exports: ServiceExportObject[],
  o: AutoOptions,
): AutoOps {
  const key = (x: { metadata: { namespace?: string; name: string } }): string =>
    `${x.metadata.namespace ?? ""}/${x.metadata.name}`;
  const have = new Map(exports.map((e) => [key(e), e]));
  const want = new Set(services.filter((s) => qualifies(s, o)).map(key));
  const create: ServiceExportObject[] = [];
  for (const s of services) {
    if (!want.has(key(s)) || have.has(key(s))) continue;
    create.push({
      apiVersion: MCS_GROUP_VERSION,
      kind: "ServiceExport",
      metadata: {
        name: s.metadata.name,
        namespace: s.metadata.namespace,
        labels: { [LABEL_AUTO_CREATED]: "true" },
      },
    });
  }
  const del = exports
    .filter(
      (e) =>
        e.metadata.labels?.[LABEL_AUTO_CREATED] === "true" &&
        !want.has(key(e)) &&
        !e.metadata.deletionTimestamp,
    )
    .map((e) => ({ namespace: e.metadata.namespace ?? "", name: e.metadata.name }));
  return { create, delete: del };
}
