import { Registry, collectDefaultMetrics } from "prom-client";

/** A per-process Prometheus registry with default process metrics, prefixed `kosmos_`. */
export function createRegistry(opts: { defaults?: boolean } = {}): Registry {
  const registry = new Registry();
  if (opts.defaults !== false) collectDefaultMetrics({ register: registry, prefix: "kosmos_" });
  return registry;
}

export { Counter, Gauge, Histogram, Registry } from "prom-client";
