import { expect, test } from "bun:test";
import { createRegistry } from "../../internal/observability/index.ts";

test("the default registry still exports process and event-loop delay metrics (sampled every 100 ms)", async () => {
  const registry = createRegistry();
  await Bun.sleep(250); // a few samples of the delay histogram
  const text = await registry.metrics();
  expect(text).toContain("kosmos_process_cpu_seconds_total");
  const p99 = /^kosmos_nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text);
  expect(p99).not.toBeNull();
  expect(Number(p99?.[1])).toBeGreaterThan(0);
  expect(createRegistry({ defaults: false }).getMetricsAsArray()).toHaveLength(0);
});
