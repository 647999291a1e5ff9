/** internal/api: the HTTP API plumbing shared by agent and controller (auth, TLS, identity, server). */
export * from "./auth.ts";
export * from "./identity.ts";
export * from "./pake.ts";
export * from "./server.ts";
export * from "./tls.ts";
export * from "./tls-request.ts";
export * from "./token.ts";
