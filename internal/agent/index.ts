/** internal/agent: kosmos-agent (replica, control loop, HTTP API, gossip wiring). */
export * from "./agent.ts";
export * from "./app.ts";
export * from "./config.ts";
export * from "./gossip.ts";
export * from "./loop.ts";
export * from "./member-events.ts";
export * from "./runtime.ts";
