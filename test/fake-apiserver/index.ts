export { ApiError, type StatusObject } from "./errors.ts";
export { jsonPatch, mergePatch, strategicMergePatch, type Json, type JsonObject } from "./patch.ts";
export { prune, resourcesFromCrd, type ResourceType } from "./resources.ts";
export { matches, parseSelector, type Requirement } from "./selector.ts";
export {
  fakeKubeconfig,
  type FakeApiServer,
  type FakeApiServerOptions,
  startFakeApiServer,
} from "./server.ts";
export { FakeStore, type KubeObject, type StoreOptions } from "./store.ts";
