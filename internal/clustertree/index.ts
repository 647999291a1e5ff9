export {
  CLUSTERS_PATH,
  type ClusterTreeOptions,
  type LeafStatus,
  type RunningClusterTree,
  startClusterTree,
} from "./clustertree.ts";
export { type Converted, convertPod, leafPodPatch, type PodDeps, tokenSecretName } from "./convert.ts";
export {
  type Authorizer,
  forbiddenText,
  type KubeletAttributes,
  type KubeletUser,
  kubeletAttributes,
  userOfCert,
  webhookAuthorizer,
} from "./authz.ts";
export { leafCopy, leafRefs } from "./deps.ts";
export { DEFAULT_THRESHOLDS, type HealthThresholds, type LeafHealth, nextHealth } from "./health.ts";
export { type DesiredNode, matchesSelector, modeOf, type NodePlan, planNodes, treeEnabled } from "./model.ts";
export { carried } from "./pods.ts";
export { aggregate, formatQuantity, parseQuantity, podRequests } from "./resources.ts";
export { type KubeletServerOptions, leafPath, startKubeletServer } from "./server.ts";
export { statusFromLeaf } from "./status.ts";
export * from "./types.ts";
