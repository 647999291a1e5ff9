export { detectPodCIDRs, detectServiceCIDRs, flagValue, serviceCidrFromError } from "./cidr.ts";
export {
  type ControllerOptions,
  type RunningController,
  startController,
  type WatchStatus,
} from "./controller.ts";
export { type DiscoveryOptions, discoverAgents, FINGERPRINT_ANNOTATION } from "./discovery.ts";
export {
  clusterNodeName,
  desiredClusterNodes,
  type MemberNode,
  mapIpFamily,
  topologyHash,
  toTopology,
} from "./mapping.ts";
export { type Member, type MemberProblem, Members, memberKubeconfig, nodeShape } from "./members.ts";
export {
  type AgentEndpoint,
  fetchPusher,
  forgetProvenPins,
  PushError,
  proveAgentCertificate,
  type Pusher,
} from "./push.ts";
export {
  CLUSTER_NODES_PATH,
  CLUSTERS_PATH,
  canonical,
  probeServiceCidr,
  reconcileCluster,
} from "./reconcile.ts";
export { Seeder, type SeederOptions, type SeederStatus } from "./seeder.ts";
export * from "./types.ts";
