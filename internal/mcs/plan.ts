/**
 * Pure MCS planning (KEP-1645): exports + Services + EndpointSlices of every joined cluster → one
 * imported service per namespace sameness group (union of ports, conflicts resolved by the oldest
 * export, reported on the exports) with the endpoints of every exporting cluster.
 *
 * No I/O: the controller lists from its informers, calls `planMcs`, then `desiredInCluster` per
 * cluster, diffs against what exists (diff.ts) and applies.
 */
import type {
  Condition,
  Endpoint,
  EndpointPort,
  EndpointSliceObject,
  ImportPort,
  ImportType,
  Protocol,
  ServiceExportObject,
  ServiceObject,
} from "./types.ts";
import { LABEL_MANAGED_BY, MANAGED_BY } from "./types.ts";

/** What the controller sees of one joined cluster. */
export interface ClusterView {
  name: string;
  /** Cluster.spec.clusterLinkOptions.globalCIDRsMap: local CIDR → global CIDR (same prefix length). */
  globalCIDRs: Record<string, string>;
  services: ServiceObject[];
  exports: ServiceExportObject[];
  /** The cluster's own EndpointSlices (imported ones, managed by Kosmos, are ignored). */
  slices: EndpointSliceObject[];
}

/** The endpoints one exporting cluster contributes (one entry per source EndpointSlice). */
export interface SourceSlice {
  cluster: string;
  /** Name of the EndpointSlice in the source cluster. */
  slice: string;
  addressType: "IPv4" | "IPv6";
  endpoints: Endpoint[];
  ports: EndpointPort[];
}

export interface ImportPlan {
  namespace: string;
  name: string;
  type: ImportType;
  ports: ImportPort[];
  sessionAffinity: "ClientIP" | "None";
  sessionAffinityTimeout?: number;
  /** Exporting clusters whose Service is valid, sorted. */
  clusters: string[];
  slices: SourceSlice[];
}

export interface ExportStatus {
  cluster: string;
  namespace: string;
  name: string;
  conditions: Condition[];
}

export interface McsPlan {
  imports: ImportPlan[];
  exports: ExportStatus[];
}

const key = (ns: string, name: string): string => `${ns}/${name}`;

function cond(type: string, status: boolean, reason: string, message: string): Condition {
  return { type, status: status ? "True" : "False", reason, message };
}

interface Member {
  cluster: string;
  created: string;
  svc: ServiceObject;
}

function typeOf(svc: ServiceObject): ImportType {
  return svc.spec?.clusterIP === "None" ? "Headless" : "ClusterSetIP";
}

function portKey(p: { name?: string; port: number; protocol?: Protocol }): string {
  return p.name ? `name:${p.name}` : `port:${p.port}/${p.protocol ?? "TCP"}`;
}

/** Oldest export first (KEP-1645: the oldest export wins a conflict), ties by cluster name. */
function byAge(a: Member, b: Member): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  return a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;
}

/** Merge one sameness group: the import and a conflict list per cluster. */
function mergeGroup(members: Member[]): {
  type: ImportType;
  ports: ImportPort[];
  affinity: "ClientIP" | "None";
  timeout?: number;
  conflicts: Map<string, { reason: string; message: string }[]>;
} {
  const sorted = [...members].sort(byAge);
  const winner = sorted[0]!;
  const type = typeOf(winner.svc);
  const affinity = winner.svc.spec?.sessionAffinity === "ClientIP" ? "ClientIP" : "None";
  const timeout = winner.svc.spec?.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  const ports = new Map<string, ImportPort & { from: string }>();
  const conflicts = new Map<string, { reason: string; message: string }[]>();
  const flag = (c: string, reason: string, message: string): void => {
    const l = conflicts.get(c) ?? [];
    l.push({ reason, message });
    conflicts.set(c, l);
  };
  for (const m of sorted) {
    if (typeOf(m.svc) !== type) {
      flag(
        m.cluster,
        "TypeConflict",
        `service is ${typeOf(m.svc)}; ${winner.cluster} (oldest export) makes it ${type}`,
      );
    }
    const a = m.svc.spec?.sessionAffinity === "ClientIP" ? "ClientIP" : "None";
    if (a !== affinity) {
      flag(
        m.cluster,
        "SessionAffinityConflict",
        `sessionAffinity ${a}; ${winner.cluster} (oldest export) has ${affinity}`,
      );
    }
    for (const p of m.svc.spec?.ports ?? []) {
      const protocol = p.protocol ?? "TCP";
      const k = portKey(p);
      const have = ports.get(k);
      if (!have) {
        const clash = [...ports.values()].find((q) => q.port === p.port && q.protocol === protocol);
        if (clash) {
          flag(
            m.cluster,
            "PortConflict",
            `port ${p.port}/${protocol} is named "${clash.name ?? ""}" by ${clash.from}`,
          );
          continue;
        }
        ports.set(k, { name: p.name, port: p.port, protocol, appProtocol: p.appProtocol, from: m.cluster });
      } else if (have.port !== p.port || have.protocol !== protocol || have.appProtocol !== p.appProtocol) {
        flag(
          m.cluster,
          "PortConflict",
          `port ${p.name ?? p.port}: ${p.port}/${protocol} here, ${have.port}/${have.protocol} in ${have.from} (oldest export wins)`,
        );
      }
    }
  }
  const list = [...ports.values()]
    .map(({ from: _from, ...p }) =>
      p.appProtocol === undefined ? { name: p.name, port: p.port, protocol: p.protocol } : p,
    )
    .map((p) =>
      p.name === undefined
        ? { port: p.port, protocol: p.protocol, ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}) }
        : p,
    )
    .sort((x, y) => x.port - y.port || x.protocol.localeCompare(y.protocol));
  return {
    type,
    ports: list,
    affinity,
    timeout: affinity === "ClientIP" ? (timeout ?? 10800) : undefined,
    conflicts,
  };
}

function sourceSlices(view: ClusterView, ns: string, name: string): SourceSlice[] {
  const out: SourceSlice[] = [];
  for (const s of view.slices) {
    if (s.metadata.namespace !== ns || s.metadata.labels?.["kubernetes.io/service-name"] !== name) continue;
    if (s.metadata.labels?.[LABEL_MANAGED_BY] === MANAGED_BY) continue;
    if (s.addressType !== "IPv4" && s.addressType !== "IPv6") continue;
    out.push({
      cluster: view.name,
      slice: s.metadata.name,
      addressType: s.addressType,
      endpoints: s.endpoints ?? [],
      ports: s.ports ?? [],
    });
  }
  return out.sort((a, b) => a.slice.localeCompare(b.slice));
}

/** Validity of one export: its Service exists and can be exported. */
function validity(svc: ServiceObject | undefined): Condition {
  if (!svc) return cond("Valid", false, "NoService", "no Service of this name in the namespace");
  if (svc.spec?.type === "ExternalName") {
    return cond("Valid", false, "ServiceTypeExternalName", "ExternalName services cannot be exported");
  }
  if (svc.metadata.deletionTimestamp)
    return cond("Valid", false, "NoService", "the Service is being deleted");
  return cond("Valid", true, "ServiceExported", "the service is exported");
}

/** The whole clusterset's imports and every export's conditions. */
export function planMcs(clusters: ClusterView[]): McsPlan {
  const groups = new Map<string, Member[]>();
  const exportsOut: ExportStatus[] = [];
  const views = [...clusters].sort((a, b) => a.name.localeCompare(b.name));
  const valid = new Map<string, Condition>();
  for (const v of views) {
    const svcs = new Map(v.services.map((s) => [key(s.metadata.namespace ?? "", s.metadata.name), s]));
    for (const e of v.exports) {
      const k = key(e.metadata.namespace ?? "", e.metadata.name);
      if (e.metadata.deletionTimestamp) continue;
      const svc = svcs.get(k);
      const c = validity(svc);
      valid.set(`${v.name}|${k}`, c);
      if (c.status !== "True" || !svc) continue;
      const l = groups.get(k) ?? [];
      l.push({ cluster: v.name, created: e.metadata.creationTimestamp ?? "", svc });
      groups.set(k, l);
    }
  }
  const imports: ImportPlan[] = [];
  const conflictsOf = new Map<string, { reason: string; message: string }[]>();
  for (const [k, members] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const [ns, name] = k.split("/") as [string, string];
    const m = mergeGroup(members);
    for (const [c, l] of m.conflicts) conflictsOf.set(`${c}|${k}`, l);
    const sources = members.map((x) => x.cluster).sort();
    imports.push({
      namespace: ns,
      name,
      type: m.type,
      ports: m.ports,
      sessionAffinity: m.affinity,
      ...(m.timeout !== undefined ? { sessionAffinityTimeout: m.timeout } : {}),
      clusters: sources,
      slices: views.filter((v) => sources.includes(v.name)).flatMap((v) => sourceSlices(v, ns, name)),
    });
  }
  for (const v of views) {
    for (const e of v.exports) {
      if (e.metadata.deletionTimestamp) continue;
      const k = key(e.metadata.namespace ?? "", e.metadata.name);
      const c = valid.get(`${v.name}|${k}`)!;
      const l = conflictsOf.get(`${v.name}|${k}`);
      const conflict = l?.length
        ? cond("Conflict", true, l[0]!.reason, l.map((x) => x.message).join("; "))
        : cond("Conflict", false, "NoConflicts", "no conflict with other clusters' exports");
      exportsOut.push({
        cluster: v.name,
        namespace: e.metadata.namespace ?? "",
        name: e.metadata.name,
        conditions: c.status === "True" ? [c, conflict] : [c],
      });
    }
  }
  return { imports, exports: exportsOut };
}
