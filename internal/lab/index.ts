/** internal/lab: see docs/architecture.md (layers). */
export * from "./addr.ts";
export * from "./apibridge.ts";
export * from "./bundle.ts";
export * from "./config.ts";
export * from "./k8s.ts";
export * from "./kubernetes.ts";
export * from "./lab.ts";
export * from "./network.ts";
export * from "./ops.ts";
export * from "./plan.ts";
export * from "./probe.ts";
export * from "./sh.ts";
