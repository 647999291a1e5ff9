/** internal/store: the node-local SQLite replica of the topology. */
export { isBun, type Driver, type RawStatement, type SqlRow, type SqlValue, type StoreDb } from "./driver.ts";
export { StoreError, type StoreErrorCode } from "./errors.ts";
export { HLC_LOGICAL_BITS, HLC_MAX_DRIFT_MS, HybridClock, packHlc, unpackHlc } from "./hlc.ts";
export {
  type AppliedRecord,
  type GatewayClaim,
  MacSchema,
  type Member,
  MemberSchema,
  type NodeStatus,
  type NodeStatusInput,
  NodeStatusSchema,
} from "./model.ts";
/** The replication types are gossip's (the store implements its port); re-exported for callers of the store. */
export { CONTROLLER_OWNER, type OwnerDigest, type ReplicaPort, type ReplicatedRow } from "../gossip/index.ts";
export * from "./schema.ts";
export { type OpenStoreOptions, openStore, snapshotReplica } from "./open.ts";
export type {
  ChangeListener,
  LocalTables,
  RecoveryInfo,
  RejectReason,
  Store,
  StoreStats,
} from "./store.ts";
export {
  mayWrite,
  REPLICATED_TABLES,
  type ReplicatedTableName,
  type ReplicatedTableSpec,
  TABLE_SPECS,
  tableSpec,
} from "./tables.ts";
