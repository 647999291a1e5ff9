export { apply, batchErrors, planSteps, type ApplyOptions, type Step } from "./apply.ts";
export { detectCapabilities, type Capabilities, type Capability } from "./capabilities.ts";
export { actualOf, conflicts, diff, uninstallChanges, type DiffMemo } from "./diff.ts";
export {
  emptyHostState,
  type Family,
  type FdbEntry,
  type HostState,
  KOSMOS_NFT_TABLE,
  KOSMOS_ROUTE_PROTO,
  KOSMOS_ROUTE_TABLE,
  KOSMOS_RULE_PRIORITY,
  type Neighbor,
  type NftIntent,
  type PolicyRule,
  type PrefixMap,
  type ServiceVip,
  type Route,
  type Sysctl,
  type VxlanDevice,
  type XfrmPolicy,
  type XfrmState,
} from "./hoststate.ts";
export { renderNft, renderNftDelete } from "./nft.ts";
export { canonAddr, canonCidr, KOSMOS_DEVICES } from "./normalize.ts";
export * as parse from "./parse.ts";
export { KOSMOS_REQID_MAX, KOSMOS_REQID_MIN, readActual, readOptionsFor, type ReadOptions } from "./read.ts";
export { type ReconcileOptions, Reconciler, type ReconcilerOptions } from "./reconciler.ts";
export {
  defaultRunner,
  execaRunner,
  netnsRunner,
  recordingRunner,
  spawnRunner,
  type Runner,
  type RunOptions,
  type RunResult,
} from "../sys/index.ts";
export type {
  ActualDevice,
  ActualNeighbor,
  ActualNft,
  ActualRoute,
  ActualState,
  ApplyError,
  ApplyReport,
  Change,
  ChangeKind,
  ReconcileReport,
} from "./types.ts";
export {
  classifyLine,
  type KernelEvent,
  type KernelEventKind,
  KernelWatcher,
  type KernelWatcherOptions,
  monitorSpecs,
} from "./watch.ts";
