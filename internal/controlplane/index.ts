export { type Assets, AssetsMissingError, assetsProblem, type Binary, findAssets } from "./assets.ts";
export {
  type ApiServerReplica,
  type Component,
  ControlPlane,
  type ControlPlaneOptions,
  type Etcd,
  kubeconfigYaml,
  startEtcd,
} from "./controlplane.ts";
export { Daemon, freePort, waitUntil } from "./daemon.ts";
export { type CertAuthority, type CertRequest, issueCert, type KeyPair, makeCA } from "./pki.ts";
