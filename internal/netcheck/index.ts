export { AgentExecutor, checkAgents, NetcheckError } from "./agents.ts";
export { mergeResume, runCheck, type RunCheckOptions } from "./check.ts";
export {
  type ClustersetName,
  clustersetName,
  encodeQuery,
  type EndpointSliceLike,
  type ExpectedSource,
  expectedFromApi,
  expectedFromZone,
  hexBytes,
  interpretReply,
  type LookupHop,
  type LookupVerdict,
  type QType,
  queryTypes,
  type ServiceImportLike,
} from "./clusterset.ts";
export {
  type AgentJson,
  apiNames,
  type ClustersetOptions,
  type ClustersetReport,
  describeSource,
  type Expected,
  expectationsFrom,
  type LookupResult,
  type PodExecutor,
  type ReplicaNames,
  replicaNames,
  type ResolverPod,
  runClustersetCheck,
} from "./clusterset-check.ts";
export {
  agentPodExecutor,
  hasDnsTargets,
  inventoryResolverPods,
  parseResolverChoice,
  type ResolverChoice,
  readsPodResolvConf,
} from "./clusterset-inventory.ts";
export {
  askResolver,
  localPodRun,
  type PodReplies,
  type PodRun,
  type PodRunResult,
  parseResolverOutput,
  RESOLVER_SCRIPT,
} from "./clusterset-probe.ts";
export { diagnose, drift, mtuMismatches, planRouteFor } from "./diagnose.ts";
export { dnsQuery, interpretDnsReply } from "./dns.ts";
export { gatherFacts, parseKernelFacts } from "./facts.ts";
export { labInventory, loadLabInventory } from "./lab.ts";
export { addressFor, buildMatrix, notExpected, pairKey } from "./matrix.ts";
export { DEFAULT_RESULTS, failedKeys, loadReport, saveReport } from "./results.ts";
export { planJobs, type ProbeExecutor, runProbes, schedule } from "./runner.ts";
export { PROBE_SCRIPT, parseScriptLine, probeLine } from "./script.ts";
export * from "./types.ts";
