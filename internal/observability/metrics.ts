import { Registry, collectDefaultMetrics } from "prom-client";

/**
 * Sampling period (ms) of the event-loop delay histogram behind the default
 * `*_nodejs_eventloop_lag_*` metrics. prom-client's default (10 ms) wakes the process 100 times a
 * second: in Bun with the JS interpreted (agents), that alone cost an idle process ~5–7 ms/s of CPU
 * (idle `bun` 1–2 ms/s, with the default metrics 7–9 ms/s, with 100 ms 3 ms/s). A stall still shows
 * up in the histogram as soon as a sample falls in it (any stall of 100 ms or more does).
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** A per-process Prometheus registry with default process metrics, prefixed `kosmos_`. */
export function createRegistry(opts: { defaults?: boolean } = {}): Registry {
  const registry = new Registry();
  if (opts.defaults !== false) {
    collectDefaultMetrics({
      register: registry,
      prefix: "kosmos_",
      eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
    });
  }
  return registry;
}

export { Counter, Gauge, Histogram, Registry } from "prom-client";
