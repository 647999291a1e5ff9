import { describe, expect, test } from "bun:test";
import { DEFAULT_LAB } from "../../internal/lab/config.ts";
import { parseLabConfig } from "../../internal/lab/config.ts";
import { planLab } from "../../internal/lab/plan.ts";
import {
  buildMatrix,
  type CheckOptions,
  diagnose,
  dnsQuery,
  interpretDnsReply,
  labInventory,
  mergeResume,
  type Pair,
  type PairResult,
  parseKernelFacts,
  parseScriptLine,
  planJobs,
  type ProbeExecutor,
  probeLine,
  runProbes,
  schedule,
} from "../../internal/netcheck/index.ts";
import type { NodeFacts } from "../../internal/netcheck/facts.ts";
import type { CheckReport } from "../../internal/netcheck/types.ts";
import { emptyHostState, type HostState } from "../../internal/dataplane/index.ts";

const plan = planLab("unit", parseLabConfig(DEFAULT_LAB));
const inv = labInventory(plan);
const base: CheckOptions = {
  mode: "pod",
  protocols: ["icmp", "tcp"],
  families: [4, 6],
  concurrency: 64,
  timeoutSec: 2,
  intraCluster: true,
  dnsName: "kubernetes.default.svc.cluster.local",
};

describe("matrix", () => {
  test("pod mode: every ordered pair of the 7 pods, global IPs across clusters, both families where both ends have them", () => {
    const m = buildMatrix(inv, base);
    expect(m.pairs.length).toBe(7 * 6);
    expect(m.skipped).toEqual([]);
    const c2toc1 = m.pairs.find((p) => p.key === "c2-node-1-pod-1>c1-node-1-pod-1") as Pair;
    expect(c2toc1.probes.map((p) => `${p.proto} ${p.ip}`)).toEqual([
      "icmp 242.1.1.2",
      "tcp 242.1.1.2",
      "icmp fd10:1:0:1::2",
      "tcp fd10:1:0:1::2",
    ]);
    // Same cluster: the local address; IPv4-only c3 gets no IPv6 probe.
    const intra = m.pairs.find((p) => p.key === "c1-node-2-pod-1>c1-node-1-pod-1") as Pair;
    expect(intra.probes[0]?.ip).toBe("10.244.1.2");
    const toC3 = m.pairs.find((p) => p.key === "c1-node-1-pod-1>c3-node-1-pod-1") as Pair;
    expect(toC3.probes.map((p) => p.ip)).toEqual(["242.3.1.2", "242.3.1.2"]);
    expect(toC3.probes[1]?.expect).toBe("c3-node-1-pod-1");
  });

  test("node mode skips what nobody carries (non-gateway nodes of gateway clusters across clusters)", () => {
    const m = buildMatrix(inv, { ...base, mode: "node" });
    expect(m.skipped.length).toBe(8);
    expect(m.skipped.every((s) => s.src === "c2-node-3" || s.dst === "c2-node-3")).toBe(true);
    expect(m.pairs.some((p) => p.key === "c2-node-1>c1-node-1")).toBe(true);
    // Node TCP: the agent listens on IPv4 only.
    const p = m.pairs.find((x) => x.key === "c1-node-1>c2-node-1") as Pair;
    expect(p.probes.filter((x) => x.proto === "tcp").map((x) => x.family)).toEqual([4]);
  });

  test("pod-to-node across clusters is skipped without egress SNAT; --src/--dst, --no-intra, only", () => {
    const m = buildMatrix(inv, { ...base, mode: "pod-to-node" });
    expect(m.pairs.every((p) => !p.cross)).toBe(true);
    const sel = buildMatrix(inv, { ...base, srcClusters: ["c1"], dstClusters: ["c2"] });
    expect(sel.pairs.length).toBe(2 * 3);
    expect(buildMatrix(inv, { ...base, intraCluster: false }).pairs.length).toBe(42 - 2 - 6 - 2);
    expect(buildMatrix(inv, base, new Set(["c1-node-1-pod-1>c2-node-1-pod-1"])).pairs.length).toBe(1);
  });

  test("packet size goes to icmp probes as DF payload (IP size - 28/48)", () => {
    const m = buildMatrix(inv, { ...base, protocols: ["icmp"], packetSize: 1400 });
    const p = m.pairs.find((x) => x.key === "c2-node-1-pod-1>c1-node-1-pod-1") as Pair;
    expect(p.probes.map((x) => probeLine("k", x))).toEqual([
      "k icmp 242.1.1.2 - 1372 -",
      "k icmp fd10:1:0:1::2 - 1352 -",
    ]);
  });
});

describe("scheduling", () => {
  test("execs × per-exec parallelism never exceeds the concurrency", () => {
    for (const c of [1, 2, 7, 64, 128, 1000]) {
      for (const s of [1, 3, 24, 200]) {
        const sch = schedule(c, s);
        expect(sch.execs * sch.perExec).toBeLessThanOrEqual(Math.max(1, c));
      }
    }
  });

  test("runProbes applies the concurrency limit and the batches cover every probe once", async () => {
    const pairs = buildMatrix(inv, base).pairs;
    let inFlight = 0;
    let maxInFlight = 0;
    const seen = new Set<string>();
    const fake: ProbeExecutor = {
      async health() {
        return undefined;
      },
      async run(_node, argv, stdin, _t, onLine) {
        const par = Number(argv[argv.length - 1]);
        const lines = stdin.trim().split("\n");
        // Emulate the script: `par` probes at a time.
        for (let i = 0; i < lines.length; i += par) {
          const wave = lines.slice(i, i + par);
          inFlight += wave.length;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await Bun.sleep(2);
          for (const l of wave) {
            const key = l.split(" ")[0] as string;
            expect(seen.has(key)).toBe(false);
            seen.add(key);
            onLine(`${key}\tok\t1\tfine`);
          }
          inFlight -= wave.length;
        }
        return { exitCode: 0, stderr: "" };
      },
    };
    const out = await runProbes(pairs, fake, { concurrency: 10, timeoutSec: 1 });
    expect(maxInFlight).toBeLessThanOrEqual(10);
    expect(out.flat().length).toBe(pairs.reduce((a, p) => a + p.probes.length, 0));
    expect(out.flat().every((o) => o.ok)).toBe(true);
    expect(planJobs(pairs, 4).every((j) => j.items.length <= 4)).toBe(true);
  });

  test("probes of a node whose agent is down fail with the reason; a crashed exec fails its batch", async () => {
    const pairs = buildMatrix(inv, base).pairs;
    const fake: ProbeExecutor = {
      async health() {
        return undefined;
      },
      async run(node) {
        throw new Error(`boom on ${node}`);
      },
    };
    const dead = new Map([["c1-node-1", "agent on c1-node-1 is not reachable"]]);
    const out = await runProbes(pairs, fake, { concurrency: 8, timeoutSec: 1, deadNodes: dead });
    const i = pairs.findIndex((p) => p.src.node === "c1-node-1");
    expect(out[i]?.[0]?.detail).toBe("agent on c1-node-1 is not reachable");
    const j = pairs.findIndex((p) => p.src.node === "c2-node-1");
    expect(out[j]?.[0]?.detail).toContain("cannot run probes on c2-node-1: boom on c2-node-1");
  });
});

describe("script output, dns, kernel facts", () => {
  test("parses result lines and ignores noise", () => {
    expect(parseScriptLine("3.1\tok\t12\trtt 0.1 ms")).toEqual({
      key: "3.1",
      ok: true,
      ms: 12,
      detail: "rtt 0.1 ms",
    });
    expect(parseScriptLine("bash: warning")).toBeUndefined();
  });

  test("dns query and reply interpretation", () => {
    const q = dnsQuery("a.bc", 0x1234);
    expect([...q]).toEqual([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 97, 2, 98, 99, 0, 0, 1, 0, 1]);
    expect(interpretDnsReply("reply  12 34 81 83", 0x1234)).toEqual({
      ok: true,
      detail: "DNS answered NXDOMAIN",
    });
    expect(interpretDnsReply("reply 12 34 81 82", 0x1234).ok).toBe(false);
    expect(interpretDnsReply("reply 99 34 81 80", 0x1234).ok).toBe(false);
  });

  test("kernel facts parse", () => {
    const out =
      '[{"dst":"10.245.0.0/16","gateway":"220.168.2.1","dev":"vx-bridge"}]\n@@\n[]\n@@\n[{"dst":"220.168.2.1","dev":"vx-bridge","lladdr":"aa:bb:cc:dd:ee:ff"}]\n@@\n[]\n@@\n[{"ifname":"eth0","mtu":1500}]\n@@\n10.245.1.2 [{"dst":"10.245.1.2","gateway":"192.168.1.254","dev":"eth0"}]\n';
    const k = parseKernelFacts(out);
    expect(k.routes.length).toBe(1);
    expect(k.links).toEqual([{ ifname: "eth0", mtu: 1500 }]);
    expect(k.routeGet["10.245.1.2"]?.dev).toBe("eth0");
  });
});

describe("diagnosis", () => {
  const hostPlan: HostState = {
    ...emptyHostState("c1-node-1", "c1", 200),
    devices: [
      {
        name: "vx-bridge",
        family: 4,
        vni: 54,
        port: 4876,
        local: "192.168.1.1",
        parent: "eth0",
        mtu: 1450,
        mac: "aa:aa:aa:aa:aa:01",
        address: "220.168.1.1/8",
      },
    ],
    routes: [
      {
        dst: "10.245.0.0/16",
        via: "220.168.2.1",
        dev: "vx-bridge",
        family: 4,
        table: 200,
        peer: "c2/c2-node-1",
      },
    ],
    fdb: [{ dev: "vx-bridge", mac: "aa:bb:cc:dd:ee:ff", dst: "192.168.2.1" }],
    neighbors: [{ dev: "vx-bridge", ip: "220.168.2.1", mac: "aa:bb:cc:dd:ee:ff", family: 4 }],
    gateways: { c2: "c2-node-1" },
  };
  const pair = buildMatrix(
    inv,
    { ...base, protocols: ["icmp"] },
    new Set(["c1-node-1-pod-1>c2-node-1-pod-1"]),
  ).pairs[0] as Pair;
  const failed = (detail: string, size?: number): PairResult => ({
    sn: 1,
    key: pair.key,
    src: pair.src.id,
    srcCluster: "c1",
    srcNode: "c1-node-1",
    dst: pair.dst.id,
    dstCluster: "c2",
    dstNode: "c2-node-1",
    ok: false,
    probes: [
      { proto: "icmp", ip: "10.245.1.2", family: 4, ok: false, ms: 2000, detail, ...(size ? { size } : {}) },
    ],
  });
  const kernel = (routes: boolean, eth0 = 1500) =>
    parseKernelFacts(
      `${routes ? '[{"dst":"10.245.0.0/16","gateway":"220.168.2.1","dev":"vx-bridge"}]' : "[]"}\n@@\n[]\n@@\n[{"dst":"220.168.2.1","dev":"vx-bridge","lladdr":"aa:bb:cc:dd:ee:ff"}]\n@@\n[{"mac":"aa:bb:cc:dd:ee:ff","ifname":"vx-bridge","dst":"192.168.2.1"}]\n@@\n[{"ifname":"eth0","mtu":${eth0}},{"ifname":"vx-bridge","mtu":1450}]\n@@\n10.245.1.2 [{"dst":"10.245.1.2","gateway":"192.168.1.254","dev":"eth0"}]\n`,
    );
  const clusters = new Map(inv.clusters.map((c) => [c.name, c]));

  test("a planned route missing from the kernel names the node and the route", () => {
    const facts = new Map<string, NodeFacts>([
      [
        "c1-node-1",
        {
          node: "c1-node-1",
          plan: hostPlan,
          kernel: kernel(false),
          state: { node: "c1-node-1", ready: true, members: { "c2-node-1": "alive" } },
        },
      ],
    ]);
    const f = diagnose(pair, failed("no reply"), { clusters, facts });
    expect(f[0]?.hop).toBe("route");
    expect(f[0]?.node).toBe("c1-node-1");
    expect(f[0]?.route).toBe("10.245.0.0/16 via 220.168.2.1 dev vx-bridge table 200");
    expect(f[0]?.message).toContain("via 192.168.1.254 dev eth0");
  });

  test("gateway down, tunnel peer missing, MTU black hole, agent unreachable", () => {
    const k = kernel(true);
    k.fdb = [];
    const facts = new Map<string, NodeFacts>([
      [
        "c1-node-1",
        {
          node: "c1-node-1",
          plan: hostPlan,
          kernel: k,
          state: { node: "c1-node-1", ready: true, members: { "c2-node-1": "dead" } },
        },
      ],
      ["c2-node-1", { node: "c2-node-1", agentError: "agent on c2-node-1 is not reachable" }],
    ]);
    const hops = diagnose(pair, failed("no reply"), { clusters, facts }).map((f) => f.hop);
    expect(hops).toContain("fdb");
    expect(hops).toContain("gateway");
    const mtuFacts = new Map<string, NodeFacts>([
      [
        "c1-node-1",
        {
          node: "c1-node-1",
          plan: hostPlan,
          kernel: kernel(true),
          state: { node: "c1-node-1", ready: true },
        },
      ],
      [
        "c2-node-1",
        { node: "c2-node-1", plan: { ...hostPlan, node: "c2-node-1" }, kernel: kernel(true, 1400) },
      ],
    ]);
    const f = diagnose(pair, failed("no reply", 1400), {
      clusters,
      facts: mtuFacts,
      smallOk: { "10.245.1.2": true },
    });
    expect(f.some((x) => x.hop === "mtu" && x.message.includes("black hole"))).toBe(true);
    expect(
      f.some((x) => x.hop === "mtu" && x.node === "c2-node-1" && x.message.includes("eth0 has 1400")),
    ).toBe(true);
    const down = diagnose(pair, failed("x"), {
      clusters,
      facts: new Map([["c1-node-1", { node: "c1-node-1", agentError: "agent on c1-node-1 is down" }]]),
    });
    expect(down).toEqual([{ hop: "agent", node: "c1-node-1", message: "agent on c1-node-1 is down" }]);
  });
});

test("resume merge replaces re-checked pairs and recounts", () => {
  const r = (key: string, ok: boolean, sn: number): PairResult => ({
    sn,
    key,
    src: "a",
    srcCluster: "c1",
    srcNode: "n",
    dst: "b",
    dstCluster: "c2",
    dstNode: "m",
    ok,
    probes: [],
  });
  const prev = {
    results: [r("a>b", true, 1), r("a>c", false, 2)],
    total: 2,
    passed: 1,
    failed: 1,
  } as unknown as CheckReport;
  const next = {
    results: [r("a>c", true, 1)],
    startedAt: "x",
    durationMs: 1,
    agentErrors: {},
  } as unknown as CheckReport;
  const m = mergeResume(prev, next);
  expect([m.passed, m.failed, m.resumed, m.results[1]?.sn]).toEqual([2, 0, 1, 2]);
});
