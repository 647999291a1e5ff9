export { kubeClient, kubeConfigFromYaml, loadKubeConfig } from "./client.ts";
export { errorStatus, isConflict, isGone, isNotFound, KubeApiError, type KubeStatus } from "./errors.ts";
export {
  Informer,
  type InformerEvent,
  type InformerHealth,
  type InformerOptions,
  objectKey,
} from "./informer.ts";
export {
  type LeaderElectionOptions,
  type LeaderElector,
  type LeaseSpec,
  microTime,
  startLeaderElection,
  tryAcquireOrRenew,
} from "./leader.ts";
export {
  applyObjects,
  deleteObjects,
  FIELD_MANAGER,
  loadKosmosCrds,
  loadManifestDir,
  MANIFESTS_DIR,
  type ManifestObject,
  parseManifests,
  ResourceMapper,
  waitEstablished,
} from "./manifests.ts";
export {
  KubeClient,
  type KubeList,
  type KubeObject,
  type Named,
  type OwnerReference,
  type PatchType,
  type Query,
  type WatchEvent,
} from "./rest.ts";
export { WorkQueue, type WorkQueueOptions } from "./workqueue.ts";
