/** internal/kubelet: see docs/architecture.md (layers). */
export * from "./env.ts";
export * from "./images.ts";
export * from "./podplan.ts";
export * from "./status.ts";
export * from "./volumes.ts";
