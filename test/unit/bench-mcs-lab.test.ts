/**
 * The pure parts of the `mcs-lab` bench (test/bench/mcs-lab-lib.ts): the address each cluster must
 * answer for a backend pod (the default lab's global CIDRs), the pollers' line protocol, the verdict
 * on a real DNS reply (the agent's own handler on a zone), and the figures from trials.
 */
import { describe, expect, test } from "bun:test";
import * as dnsPacket from "dns-packet";
import { buildZone, handleQuery } from "../../internal/dns/index.ts";
import type { Topology } from "../../internal/topology/index.ts";
import { Counter, createRegistry, Gauge } from "../../internal/observability/index.ts";
import {
  detectorFigures,
  expectedAddress,
  lastAfter,
  parseSeen,
  parseWatch,
  replyMeets,
  seenLine,
  summarize,
  type Trial,
  watchLine,
} from "../bench/mcs-lab-lib.ts";

const GLOBALS = { c1: { "10.244.0.0/16": "242.1.0.0/16" }, c2: {}, c3: { "10.244.0.0/16": "242.3.0.0/16" } };

describe("the address each cluster must answer", () => {
  test("own cluster: the pod IP; others: the source's global IP where it maps its pod CIDR", () => {
    expect(expectedAddress("10.244.1.19", "c1", "c1", GLOBALS)).toBe("10.244.1.19");
    expect(expectedAddress("10.244.1.19", "c1", "c2", GLOBALS)).toBe("242.1.1.19");
    expect(expectedAddress("10.244.1.19", "c1", "c3", GLOBALS)).toBe("242.1.1.19");
    expect(expectedAddress("10.244.2.7", "c3", "c1", GLOBALS)).toBe("242.3.2.7");
    expect(expectedAddress("10.245.3.18", "c2", "c1", GLOBALS)).toBe("10.245.3.18");
  });
});

describe("poller lines", () => {
  test("watch and seen round-trip; junk is ignored", () => {
    const w = watchLine(
      "prop-3:c2-node-1:in",
      "present",
      "A",
      "prop.kosmos-bench.svc.clusterset.local",
      "242.1.1.5",
    );
    expect(parseWatch(w)).toEqual({
      id: "prop-3:c2-node-1:in",
      want: "present",
      qtype: "A",
      name: "prop.kosmos-bench.svc.clusterset.local",
      addr: "242.1.1.5",
    });
    expect(parseSeen(seenLine({ id: "x", atMs: 1764740000123.456, polls: 7 }))).toEqual({
      id: "x",
      atMs: 1764740000123.456,
      polls: 7,
    });
    expect(parseWatch("watch x maybe A n a")).toBeUndefined();
    expect(parseSeen("ready")).toBeUndefined();
  });
});

describe("the verdict on a real reply (the agent's DNS handler)", () => {
  const cluster = (name: string, globalCIDRs: Record<string, string>) => ({
    name,
    networkType: "p2p" as const,
    ipFamily: "ipv4" as const,
    podCIDRs: [],
    serviceCIDRs: [],
    globalCIDRs,
    bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
    localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
  });
  const topo = (addresses: string[]): Topology => ({
    clusters: [cluster("c1", GLOBALS.c1), cluster("c2", {})],
    nodes: [],
    serviceImports: [
      {
        name: "kosmos-bench/prop",
        namespace: "kosmos-bench",
        service: "prop",
        type: "Headless",
        ips: [],
        ports: [{ port: 8080, protocol: "TCP" }],
        sessionAffinity: "None",
        clusters: ["c1"],
      },
    ],
    serviceEndpoints: [
      {
        name: "kosmos-bench/prop/c1/prop-x",
        namespace: "kosmos-bench",
        service: "prop",
        cluster: "c1",
        slice: "prop-x",
        addressType: "IPv4",
        ports: [{ port: 8080, protocol: "TCP" }],
        endpoints: addresses.map((a) => ({ addresses: [a], ready: true })),
      },
    ],
  });
  const ask = (t: Topology, self: string, name = "prop.kosmos-bench.svc.clusterset.local"): Buffer => {
    const q = dnsPacket.encode({ type: "query", id: 9, questions: [{ type: "A", name, class: "IN" }] });
    const r = handleQuery(q, buildZone(t, self), "udp");
    if (r.kind !== "reply") throw new Error("no reply");
    return Buffer.from(r.bytes);
  };

  test("present: the address as that cluster sees it; absent: NOERROR without it; NXDOMAIN meets neither", () => {
    const withPod = topo(["10.244.1.5"]);
    expect(replyMeets(ask(withPod, "c2"), { want: "present", qtype: "A", addr: "242.1.1.5" })).toBe(true);
    expect(replyMeets(ask(withPod, "c1"), { want: "present", qtype: "A", addr: "10.244.1.5" })).toBe(true);
    expect(replyMeets(ask(withPod, "c2"), { want: "present", qtype: "A", addr: "10.244.1.5" })).toBe(false);
    const empty = topo([]);
    expect(replyMeets(ask(empty, "c2"), { want: "absent", qtype: "A", addr: "242.1.1.5" })).toBe(true);
    expect(replyMeets(ask(empty, "c2"), { want: "absent", qtype: "A", addr: "0.0.0.0" })).toBe(true);
    const nx = ask(empty, "c2", "nope.kosmos-bench.svc.clusterset.local");
    expect(replyMeets(nx, { want: "absent", qtype: "A", addr: "0.0.0.0" })).toBe(false);
    expect(replyMeets(Buffer.from([1, 2, 3]), { want: "absent", qtype: "A", addr: "0.0.0.0" })).toBe(false);
  });
});

describe("figures", () => {
  const trial = (ready: number, local: number, imported: number[], dns: number[], gone: number[]): Trial => ({
    source: "c1",
    readyAtMs: ready,
    localSliceAtMs: local,
    importedAtMs: Object.fromEntries(imported.map((x, i) => [`c${i + 2}`, x])),
    dnsAtMs: Object.fromEntries(dns.map((x, i) => [`n${i}`, x])),
    deletedAtMs: ready + 10_000,
    goneAtMs: Object.fromEntries(gone.map((x, i) => [`n${i}`, ready + 10_000 + x])),
  });

  test("the last node counts; a missing one makes the trial a miss, left out of the percentiles", () => {
    expect(lastAfter(100, [150, 400, 130])).toBe(300);
    expect(lastAfter(100, [150, undefined])).toBeNaN();
    const missed = trial(1000, 1050, [1200, 1300], [1400, 1500], [200, 300]);
    missed.dnsAtMs.n1 = undefined;
    const rows = summarize([trial(1000, 1040, [1200, 1250], [1300, 1600], [100, 400]), missed], 2);
    const byName = (s: string) => rows.find((r) => r.name.includes(s));
    expect(byName("p50 over 1 trials")?.value).toBe(600);
    expect(byName("p50 over 1 trials")?.baseline?.value).toBe(40);
    expect(byName("imported EndpointSlice")?.value).toBe(300);
    expect(byName("per node")?.value).toBe(600);
    expect(byName("gone from every node")?.value).toBe(400);
    expect(byName("missed")?.value).toBe(1);
  });
});

describe("detectorFigures", () => {
  test("reads the agent's detector counters and event-loop lag from prom-client's exposition", async () => {
    const registry = createRegistry();
    const values: Record<string, number> = {
      kosmos_gossip_probes_total: 1200,
      kosmos_gossip_probes_failed_total: 14,
      kosmos_gossip_suspicions_total: 9,
      kosmos_gossip_refutations_total: 3,
      kosmos_gossip_deaths_declared_total: 1,
    };
    for (const [name, v] of Object.entries(values))
      new Counter({ name, help: name, registers: [registry] }).inc(v);
    const text = await registry.metrics();
    expect(text).toContain("kosmos_nodejs_eventloop_lag_p99_seconds");
    new Gauge({ name: "unrelated_probes_total", help: "x", registers: [registry] }).set(5);
    const f = detectorFigures(await registry.metrics());
    expect(f).toMatchObject({ probes: 1200, failed: 14, suspicions: 9, refutations: 3, deaths: 1 });
    expect(f.lagP99Ms).toBeGreaterThanOrEqual(0);
    expect(detectorFigures("").probes).toBeNaN();
  });
});
