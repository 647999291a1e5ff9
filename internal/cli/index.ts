/** internal/cli: see docs/architecture.md (layers). */
export * from "./check.ts";
export * from "./exec.ts";
export * from "./inspect.ts";
export * from "./k8s-objects.ts";
export * from "./k8s-ops.ts";
export * from "./k8s.ts";
export * from "./lab.ts";
export * from "./output.ts";
export * from "./rollout.ts";
export * from "./program.ts";
