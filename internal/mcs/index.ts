export { AllocationError, allocateClusterSetIPs, parseRange } from "./alloc.ts";
export { type AutoOps, type AutoOptions, planAutoExports, qualifies } from "./auto.ts";
export {
  DEFAULT_CLUSTERSET_CIDR,
  type McsOptions,
  type McsState,
  type RunningMcs,
  startMcs,
} from "./controller.ts";
export {
  type DesiredObjects,
  desiredInCluster,
  importedSliceName,
  parseGlobals,
  reachableAddress,
} from "./desired.ts";
export { canonicalJson, type Current, diffCluster, mergeConditions, type Op } from "./diff.ts";
export { ENDPOINT_SLICES, mcsCrds, SERVICE_EXPORTS, SERVICE_IMPORTS } from "./members.ts";
export {
  type ClusterView,
  type ExportStatus,
  type ImportPlan,
  type McsPlan,
  planMcs,
  type SourceSlice,
} from "./plan.ts";
export * from "./types.ts";
export { topologyRecords } from "./records.ts";
