/**
 * SQLite schema of the node-local replica (drizzle sqlite-core). Documented in docs/sqlite-schema.md.
 *
 * Replicated tables (clusters, nodes, node_status, service_imports, service_endpoints) carry `owner`, `version` (HLC, see hlc.ts) and
 * `deleted` (tombstone, data columns NULL) on every row. JSON columns hold text (lists and maps only).
 * Every other table is local to this node and never gossiped.
 *
 * Changing this file: run `bunx drizzle-kit generate` and commit the new migration in migrations/.
 */
import { sql } from "drizzle-orm";
import {
  check,
  index,
  integer,
  primaryKey,
  type SQLiteColumn,
  sqliteTable,
  text,
} from "drizzle-orm/sqlite-core";

// ---------------------------------------------------------------------------------------------
// Replicated
// ---------------------------------------------------------------------------------------------

/** The header every replicated row carries (fresh builders per table: drizzle binds a builder to one table). */
const replicatedColumns = () => ({
  name: text("name").primaryKey(),
  owner: text("owner").notNull(),
  version: integer("version").notNull(),
  deleted: integer("deleted").notNull().default(0),
});

/** The (owner, version) index anti-entropy reads by, and the tombstone flag's check. */
const replicatedConstraints = (
  table: string,
  t: { owner: SQLiteColumn; version: SQLiteColumn; deleted: SQLiteColumn },
) => [
  index(`${table}_owner_version`).on(t.owner, t.version),
  check(`${table}_deleted_bool`, sql`${t.deleted} IN (0, 1)`),
];

/** Clusters. Writable by owner "controller" only. */
export const clusters = sqliteTable(
  "clusters",
  {
    ...replicatedColumns(),
    networkType: text("network_type"),
    ipFamily: text("ip_family"),
    /** JSON array of CIDR strings. */
    podCidrs: text("pod_cidrs"),
    /** JSON array of CIDR strings. */
    serviceCidrs: text("service_cidrs"),
    /** JSON object local CIDR -> global CIDR. */
    globalCidrs: text("global_cidrs"),
    /** JSON object {ip, ip6}. */
    bridgeCidrs: text("bridge_cidrs"),
    /** JSON object {ip, ip6}. */
    localCidrs: text("local_cidrs"),
    mtu: integer("mtu"),
  },
  (t) => [...replicatedConstraints("clusters", t)],
);

/** Nodes. Writable by "controller" (seed) or by the node itself (owner = name). */
export const nodes = sqliteTable(
  "nodes",
  {
    ...replicatedColumns(),
    cluster: text("cluster"),
    ipv4: text("ipv4"),
    ipv6: text("ipv6"),
    /** JSON array of CIDR strings. */
    podCidrs: text("pod_cidrs"),
    gatewayCandidate: integer("gateway_candidate"),
    elasticIp: text("elastic_ip"),
    interfaceName: text("interface_name"),
    underlayMtu: integer("underlay_mtu"),
  },
  (t) => [...replicatedConstraints("nodes", t), index("nodes_cluster").on(t.cluster)],
);

/** Runtime facts a node publishes about itself. Node-owned only (owner = name). */
export const nodeStatus = sqliteTable(
  "node_status",
  {
    ...replicatedColumns(),
    /** Agent API base URL (https://host:port). */
    endpoint: text("endpoint"),
    /** SHA-256 fingerprint of the agent's TLS certificate (clients pin it). */
    certFingerprint: text("cert_fingerprint"),
    agentVersion: text("agent_version"),
    /** Unix epoch milliseconds the agent started. */
    startedAt: integer("started_at"),
    /** JSON object device name -> MAC (e.g. {"vx-local":"02:..","vx-bridge":"02:.."}). */
    macs: text("macs"),
    /** Cluster this node is the active gateway of (its claim; every agent's election honours it). */
    gatewayFor: text("gateway_for"),
    /** Unix epoch milliseconds of the claim: the newest claim of an alive candidate wins. */
    gatewaySince: integer("gateway_since"),
  },
  (t) => [...replicatedConstraints("node_status", t)],
);

/** Multi-cluster service imports (internal/mcs; key `<ns>/<service>`). Writable by "controller" only. */
export const serviceImports = sqliteTable(
  "service_imports",
  {
    ...replicatedColumns(),
    namespace: text("namespace"),
    service: text("service"),
    /** ClusterSetIP | Headless */
    type: text("type"),
    /** JSON array: the ClusterSetIP (empty when Headless). */
    ips: text("ips"),
    /** JSON array of {name?, port, protocol, appProtocol?}. */
    ports: text("ports"),
    /** ClientIP | None */
    sessionAffinity: text("session_affinity"),
    affinityTimeout: integer("affinity_timeout"),
    /** JSON array of exporting cluster names. */
    clusters: text("clusters"),
  },
  (t) => [...replicatedConstraints("service_imports", t)],
);

/**
 * Endpoints one exporting cluster contributes to a service import, one row per source EndpointSlice
 * (key `<ns>/<service>/<cluster>/<slice>`). Writable by "controller" only.
 */
export const serviceEndpoints = sqliteTable(
  "service_endpoints",
  {
    ...replicatedColumns(),
    namespace: text("namespace"),
    service: text("service"),
    cluster: text("cluster"),
    slice: text("slice"),
    /** IPv4 | IPv6 */
    addressType: text("address_type"),
    /** JSON array of {name?, port, protocol}. */
    ports: text("ports"),
    /** JSON array of {addresses, ready, hostname?, node?}. */
    endpoints: text("endpoints"),
  },
  (t) => [
    ...replicatedConstraints("service_endpoints", t),
    index("service_endpoints_service").on(t.namespace, t.service),
  ],
);

/** Incrementally maintained per-owner digest over the replicated tables (anti-entropy). */
export const ownerDigests = sqliteTable("owner_digests", {
  owner: text("owner").primaryKey(),
  maxVersion: integer("max_version").notNull(),
  count: integer("count").notNull(),
  /** XOR of the 64-bit row hashes, 16 hex digits. */
  hash: text("hash").notNull(),
});

// ---------------------------------------------------------------------------------------------
// Local only
// ---------------------------------------------------------------------------------------------

/** Key/value facts about this replica (node name, ...). Never secrets. */
export const meta = sqliteTable("meta", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

/** The local SWIM view of the membership. */
export const members = sqliteTable(
  "members",
  {
    name: text("name").primaryKey(),
    /** alive | suspect | dead | left */
    state: text("state").notNull(),
    incarnation: integer("incarnation").notNull().default(0),
    /** Gossip address host:port. */
    address: text("address"),
    /** Unix epoch milliseconds of the last state change. */
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [check("members_state", sql`${t.state} IN ('alive', 'suspect', 'dead', 'left')`)],
);

/** Singleton (id = 1): what the agent last applied to the host. */
export const applied = sqliteTable(
  "applied",
  {
    id: integer("id").primaryKey(),
    /** JSON HostState (internal/dataplane/hoststate.ts). */
    planJson: text("plan_json").notNull(),
    planHash: text("plan_hash").notNull(),
    /** Unix epoch milliseconds. */
    appliedAt: integer("applied_at").notNull(),
    /** JSON reconcile report. */
    reportJson: text("report_json"),
    /** JSON detected capabilities (vxlan, nft, xfrm). */
    capabilitiesJson: text("capabilities_json"),
  },
  (t) => [check("applied_singleton", sql`${t.id} = 1`)],
);

/** Audit log of remote exec sessions (node-agent-exec.md). */
export const execSessions = sqliteTable(
  "exec_sessions",
  {
    id: text("id").primaryKey(),
    /** Unix epoch milliseconds. */
    startedAt: integer("started_at").notNull(),
    endedAt: integer("ended_at"),
    principal: text("principal").notNull(),
    remoteAddr: text("remote_addr"),
    /** API endpoint used (e.g. /v1/exec). */
    endpoint: text("endpoint"),
    command: text("command").notNull(),
    /** JSON array of strings. */
    args: text("args").notNull().default("[]"),
    cwd: text("cwd"),
    tty: integer("tty").notNull().default(0),
    exitCode: integer("exit_code"),
    signal: text("signal"),
    durationMs: integer("duration_ms"),
    bytesIn: integer("bytes_in").notNull().default(0),
    bytesOut: integer("bytes_out").notNull().default(0),
    error: text("error"),
  },
  (t) => [index("exec_sessions_started_at").on(t.startedAt)],
);

/** Join/leave workflows driven by the agent (resumable after a restart). */
export const workflows = sqliteTable(
  "workflows",
  {
    id: text("id").primaryKey(),
    /** join | leave */
    kind: text("kind").notNull(),
    /** pending | running | succeeded | failed | rolled_back */
    status: text("status").notNull(),
    specJson: text("spec_json").notNull(),
    currentStep: integer("current_step").notNull().default(0),
    attempts: integer("attempts").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    error: text("error"),
  },
  (t) => [
    index("workflows_status").on(t.status),
    check("workflows_kind", sql`${t.kind} IN ('join', 'leave')`),
    check(
      "workflows_status_enum",
      sql`${t.status} IN ('pending', 'running', 'succeeded', 'failed', 'rolled_back')`,
    ),
  ],
);

export const workflowSteps = sqliteTable(
  "workflow_steps",
  {
    workflowId: text("workflow_id")
      .notNull()
      .references(() => workflows.id, { onDelete: "cascade" }),
    idx: integer("idx").notNull(),
    name: text("name").notNull(),
    /** upload | run | wait */
    kind: text("kind").notNull(),
    /** pending | running | succeeded | failed | rolled_back | skipped */
    status: text("status").notNull(),
    attempts: integer("attempts").notNull().default(0),
    startedAt: integer("started_at"),
    endedAt: integer("ended_at"),
    /** Last few KiB of the step's output. */
    outputTail: text("output_tail"),
    error: text("error"),
  },
  (t) => [primaryKey({ columns: [t.workflowId, t.idx] })],
);

/** All tables, as passed to drizzle(). */
export const schema = {
  clusters,
  nodes,
  nodeStatus,
  serviceImports,
  serviceEndpoints,
  ownerDigests,
  meta,
  members,
  applied,
  execSessions,
  workflows,
  workflowSteps,
};
export type StoreSchema = typeof schema;
