/**
 * The replicated tables: how a ReplicatedRow's `data` (a model object) maps to SQL columns and
 * back, and who may write which row. Pure.
 */
import type { z } from "zod";
import {
  type Cluster,
  ClusterSchema,
  type Node,
  NodeSchema,
  type ServiceEndpointsRecord,
  ServiceEndpointsRecordSchema,
  type ServiceImportRecord,
  ServiceImportRecordSchema,
} from "../topology/index.ts";
import type { SqlRow, SqlValue } from "./driver.ts";
import { type NodeStatus, NodeStatusSchema } from "./model.ts";
import { CONTROLLER_OWNER } from "../gossip/index.ts";

export type ReplicatedTableName =
  | "clusters"
  | "nodes"
  | "node_status"
  | "service_imports"
  | "service_endpoints";
export const REPLICATED_TABLES: readonly ReplicatedTableName[] = [
  "clusters",
  "nodes",
  "node_status",
  "service_imports",
  "service_endpoints",
];

export interface ReplicatedTableSpec {
  name: ReplicatedTableName;
  /** Data column names (SQL), in order; the key column is always `name`. */
  columns: readonly string[];
  schema: z.ZodType<Record<string, unknown>>;
  /** Model object (already parsed) -> data column values (same order as `columns`). */
  toColumns(data: Record<string, unknown>): SqlValue[];
  /** Stored row (live, not a tombstone) -> model object. */
  fromColumns(row: SqlRow): Record<string, unknown>;
  /** May `owner` write the row `key` of this table? */
  mayWrite(owner: string, key: string): boolean;
}

const json = (v: unknown): string => JSON.stringify(v);
const str = (v: unknown): SqlValue => (typeof v === "string" ? v : null);
const num = (v: unknown): SqlValue => (typeof v === "number" ? v : null);
function parseJson<T>(v: SqlValue | undefined, fallback: T): T {
  if (typeof v !== "string") return fallback;
  return JSON.parse(v) as T;
}
/** Set `obj[k] = v` only when v is not null (optional model fields are omitted, never null). */
function opt(obj: Record<string, unknown>, k: string, v: SqlValue | undefined): void {
  if (v !== null && v !== undefined) obj[k] = v;
}

const clusterSpec: ReplicatedTableSpec = {
  name: "clusters",
  columns: [
    "network_type",
    "ip_family",
    "pod_cidrs",
    "service_cidrs",
    "global_cidrs",
    "bridge_cidrs",
    "local_cidrs",
    "mtu",
  ],
  schema: ClusterSchema as unknown as z.ZodType<Record<string, unknown>>,
  toColumns(d) {
    const c = d as unknown as Cluster;
    return [
      c.networkType,
      c.ipFamily,
      json(c.podCIDRs),
      json(c.serviceCIDRs),
      json(c.globalCIDRs),
      json(c.bridgeCIDRs),
      json(c.localCIDRs),
      num(c.mtu),
    ];
  },
  fromColumns(r) {
    const c: Record<string, unknown> = {
      name: r.name,
      networkType: r.network_type,
      ipFamily: r.ip_family,
      podCIDRs: parseJson(r.pod_cidrs, []),
      serviceCIDRs: parseJson(r.service_cidrs, []),
      globalCIDRs: parseJson(r.global_cidrs, {}),
      bridgeCIDRs: parseJson(r.bridge_cidrs, {}),
      localCIDRs: parseJson(r.local_cidrs, {}),
    };
    opt(c, "mtu", r.mtu);
    return c;
  },
  mayWrite: (owner) => owner === CONTROLLER_OWNER,
};

const nodeSpec: ReplicatedTableSpec = {
  name: "nodes",
  columns: [
    "cluster",
    "ipv4",
    "ipv6",
    "pod_cidrs",
    "gateway_candidate",
    "elastic_ip",
    "interface_name",
    "underlay_mtu",
  ],
  schema: NodeSchema as unknown as z.ZodType<Record<string, unknown>>,
  toColumns(d) {
    const n = d as unknown as Node;
    return [
      n.cluster,
      str(n.ipv4),
      str(n.ipv6),
      json(n.podCIDRs),
      n.gatewayCandidate ? 1 : 0,
      str(n.elasticIP),
      str(n.interfaceName),
      num(n.underlayMTU),
    ];
  },
  fromColumns(r) {
    const n: Record<string, unknown> = { name: r.name, cluster: r.cluster };
    opt(n, "ipv4", r.ipv4);
    opt(n, "ipv6", r.ipv6);
    n.podCIDRs = parseJson(r.pod_cidrs, []);
    n.gatewayCandidate = r.gateway_candidate === 1;
    opt(n, "elasticIP", r.elastic_ip);
    opt(n, "interfaceName", r.interface_name);
    opt(n, "underlayMTU", r.underlay_mtu);
    return n;
  },
  mayWrite: (owner, key) => owner === CONTROLLER_OWNER || owner === key,
};

const nodeStatusSpec: ReplicatedTableSpec = {
  name: "node_status",
  columns: [
    "endpoint",
    "cert_fingerprint",
    "agent_version",
    "started_at",
    "macs",
    "gateway_for",
    "gateway_since",
  ],
  schema: NodeStatusSchema as unknown as z.ZodType<Record<string, unknown>>,
  toColumns(d) {
    const s = d as unknown as NodeStatus;
    return [
      str(s.endpoint),
      str(s.certFingerprint),
      str(s.agentVersion),
      num(s.startedAt),
      json(s.macs),
      str(s.gatewayFor),
      num(s.gatewaySince),
    ];
  },
  fromColumns(r) {
    const s: Record<string, unknown> = { name: r.name };
    opt(s, "endpoint", r.endpoint);
    opt(s, "certFingerprint", r.cert_fingerprint);
    opt(s, "agentVersion", r.agent_version);
    opt(s, "startedAt", r.started_at);
    s.macs = parseJson(r.macs, {});
    opt(s, "gatewayFor", r.gateway_for);
    opt(s, "gatewaySince", r.gateway_since);
    return s;
  },
  mayWrite: (owner, key) => owner === key,
};

const serviceImportSpec: ReplicatedTableSpec = {
  name: "service_imports",
  columns: [
    "namespace",
    "service",
    "type",
    "ips",
    "ports",
    "session_affinity",
    "affinity_timeout",
    "clusters",
  ],
  schema: ServiceImportRecordSchema as unknown as z.ZodType<Record<string, unknown>>,
  toColumns(d) {
    const s = d as unknown as ServiceImportRecord;
    return [
      s.namespace,
      s.service,
      s.type,
      json(s.ips),
      json(s.ports),
      s.sessionAffinity,
      num(s.affinityTimeoutSeconds),
      json(s.clusters),
    ];
  },
  fromColumns(r) {
    const s: Record<string, unknown> = {
      name: r.name,
      namespace: r.namespace,
      service: r.service,
      type: r.type,
      ips: parseJson(r.ips, []),
      ports: parseJson(r.ports, []),
      sessionAffinity: r.session_affinity,
    };
    opt(s, "affinityTimeoutSeconds", r.affinity_timeout);
    s.clusters = parseJson(r.clusters, []);
    return s;
  },
  mayWrite: (owner) => owner === CONTROLLER_OWNER,
};

const serviceEndpointsSpec: ReplicatedTableSpec = {
  name: "service_endpoints",
  columns: ["namespace", "service", "cluster", "slice", "address_type", "ports", "endpoints"],
  schema: ServiceEndpointsRecordSchema as unknown as z.ZodType<Record<string, unknown>>,
  toColumns(d) {
    const s = d as unknown as ServiceEndpointsRecord;
    return [s.namespace, s.service, s.cluster, s.slice, s.addressType, json(s.ports), json(s.endpoints)];
  },
  fromColumns(r) {
    return {
      name: r.name,
      namespace: r.namespace,
      service: r.service,
      cluster: r.cluster,
      slice: r.slice,
      addressType: r.address_type,
      ports: parseJson(r.ports, []),
      endpoints: parseJson(r.endpoints, []),
    };
  },
  mayWrite: (owner) => owner === CONTROLLER_OWNER,
};

export const TABLE_SPECS: Readonly<Record<ReplicatedTableName, ReplicatedTableSpec>> = {
  clusters: clusterSpec,
  nodes: nodeSpec,
  node_status: nodeStatusSpec,
  service_imports: serviceImportSpec,
  service_endpoints: serviceEndpointsSpec,
};

export function tableSpec(table: string): ReplicatedTableSpec | undefined {
  return Object.hasOwn(TABLE_SPECS, table) ? TABLE_SPECS[table as ReplicatedTableName] : undefined;
}

/**
 * Ownership rules (shared with in-memory replicas): clusters, service_imports and service_endpoints
 * by "controller" only; nodes by "controller" or the node itself; node_status by the node itself.
 * Unknown tables: nobody.
 */
export function mayWrite(table: string, owner: string, key: string): boolean {
  return tableSpec(table)?.mayWrite(owner, key) ?? false;
}
