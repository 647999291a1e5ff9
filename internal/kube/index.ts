export * from "./fake-apiserver/index.ts";
export {
  loadKosmosCrds,
  loadManifestDir,
  MANIFESTS_DIR,
  type ManifestObject,
  parseManifests,
} from "./manifests.ts";
export { errorCode, kubeConfigFromYaml } from "./client.ts";
