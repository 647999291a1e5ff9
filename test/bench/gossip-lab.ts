/**
 * Gossip with real agent processes in labs (root): propagation of one topology change to every
 * agent (vs. a plain HTTP push to every agent), failure detection + gateway failover until pod
 * traffic flows again, and agent RSS at idle with a replica of 1,000 extra peers (vs. an idle Bun).
 *
 *   bun test/bench/gossip-lab.ts          (KOSMOS_BENCH_LAB_SIZES=7,15,30 to choose lab sizes,
 *                                          KOSMOS_BENCH_LAB_PARTS=propagation,failover,memory,
 *                                          KOSMOS_BENCH_FAILOVERS=10 failover rounds)
 */
import { readFile } from "node:fs/promises";
import { DEFAULT_LAB, type LabConfigInput, parseLabConfig } from "../../internal/lab/config.ts";
import { agentFetch, agentSocket, labDown, labUp, nodeDir } from "../../internal/lab/lab.ts";
import { labAgentPid, labKillAgent, labRestartAgent } from "../../internal/lab/ops.ts";
import type { LabPlan } from "../../internal/lab/plan.ts";
import { sh } from "../../internal/lab/sh.ts";
import type { Node, Topology } from "../../internal/topology/index.ts";
import { withThousandPeers } from "./agent.ts";
import { type BenchResult, percentile, printResults } from "./lib.ts";

const tag = process.pid.toString(36).slice(-5);
const REPS = 10;
const FAILOVER_REPS = Number(process.env.KOSMOS_BENCH_FAILOVERS ?? 10);

function p2pLab(total: number): LabConfigInput {
  const per = Math.ceil(total / 3);
  const counts = [per, per, total - 2 * per];
  return {
    clusters: counts.map((n, i) => ({
      name: `c${i + 1}`,
      networkType: "p2p",
      ipFamily: "ipv4",
      nodes: n,
      podsPerNode: 0,
    })),
  };
}

async function json<T>(lab: string, node: string, path: string): Promise<T> {
  const r = await agentFetch(agentSocket(lab, node), path, { timeoutMs: 5000 });
  return (await r.json()) as T;
}

const hasNode = async (lab: string, node: string, name: string) =>
  (await json<Topology>(lab, node, "/v1/topology")).nodes.some((n) => n.name === name);

/** A node without an agent (no process, nothing answers at its address) in cluster c1. */
function phantom(plan: LabPlan, name: string, i: number): Node {
  const c1 = plan.topology.clusters[0];
  const base = (c1?.podCIDRs[0] ?? "10.101.0.0/16").split(".");
  return {
    name,
    cluster: c1?.name ?? "c1",
    ipv4: `192.168.1.${100 + i}`,
    podCIDRs: [`${base[0]}.${base[1]}.${100 + i}.0/24`],
    gatewayCandidate: false,
    interfaceName: "eth0",
    underlayMTU: 1500,
  };
}

/** Wait until every agent has `name`; returns the ms since t0 when the last one had it. */
async function waitAll(
  lab: string,
  nodes: string[],
  name: string,
  t0: number,
  timeoutMs = 30_000,
): Promise<number> {
  const at = await Promise.all(
    nodes.map(async (n) => {
      const deadline = t0 + timeoutMs;
      while (performance.now() < deadline) {
        if (await hasNode(lab, n, name).catch(() => false)) return performance.now() - t0;
        await Bun.sleep(15);
      }
      throw new Error(`${n} never got ${name}`);
    }),
  );
  return Math.max(...at);
}

async function propagation(size: number): Promise<BenchResult[]> {
  const lab = `bgp${size}${tag}`.slice(0, 12);
  await labDown(lab);
  try {
    const { plan, token } = await labUp(lab, parseLabConfig(p2pLab(size)));
    const nodes = plan.nodes.map((n) => n.name);
    const seeded = nodes[0] as string;
    const gossip: number[] = [];
    const push: number[] = [];
    let topo: Topology = plan.topology;
    for (let i = 0; i < REPS; i++) {
      // Gossip: the change goes into ONE agent.
      const g = `bench-g${i}`;
      topo = { ...topo, nodes: [...topo.nodes, phantom(plan, g, 2 * i)] };
      let t0 = performance.now();
      await agentFetch(agentSocket(lab, seeded), "/v1/topology", {
        method: "POST",
        body: topo,
        token,
        timeoutMs: 10_000,
      });
      gossip.push(await waitAll(lab, nodes, g, t0));
      // Baseline: the test pushes the change to every agent over HTTP.
      const b = `bench-b${i}`;
      topo = { ...topo, nodes: [...topo.nodes, phantom(plan, b, 2 * i + 1)] };
      t0 = performance.now();
      await Promise.all(
        nodes.map((n) =>
          agentFetch(agentSocket(lab, n), "/v1/topology", {
            method: "POST",
            body: topo,
            token,
            timeoutMs: 10_000,
          }),
        ),
      );
      push.push(performance.now() - t0);
      await Bun.sleep(300);
    }
    return [
      {
        name: `lab ${size} agents: propagation p50`,
        value: percentile(gossip, 50),
        unit: "ms",
        baseline: { name: "HTTP push to all", value: percentile(push, 50) },
      },
      {
        name: `lab ${size} agents: propagation p99`,
        value: percentile(gossip, 99),
        unit: "ms",
        baseline: { name: "HTTP push to all", value: percentile(push, 99) },
      },
    ];
  } finally {
    await labDown(lab);
  }
}

/** One ping with a short deadline (a probe loop's step). */
async function pingOk(ns: string, family: 4 | 6, ip: string): Promise<boolean> {
  const r = await sh(["ip", "netns", "exec", ns, "ping", `-${family}`, "-c1", "-W", "0.25", "-q", ip], {
    allowFail: true,
  });
  return r.code === 0;
}

/** Agent log events (pino JSON lines) written after byte `from` of each node's agent.log. */
async function logEvents(
  lab: string,
  nodes: string[],
  from: Map<string, number>,
): Promise<Array<{ node: string; t: number; msg: string; changes?: number }>> {
  const out: Array<{ node: string; t: number; msg: string; changes?: number }> = [];
  for (const node of nodes) {
    const buf = await readFile(`${nodeDir(lab, node)}/agent.log`).catch(() => Buffer.alloc(0));
    for (const line of buf
      .subarray(from.get(node) ?? 0)
      .toString("utf8")
      .split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const j = JSON.parse(line) as { time?: string | number; msg?: string; changes?: number };
        const t = typeof j.time === "string" ? Date.parse(j.time) : (j.time ?? Number.NaN);
        out.push({ node, t, msg: j.msg ?? "", ...(j.changes !== undefined ? { changes: j.changes } : {}) });
      } catch {
        /* a partial last line */
      }
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

interface FailoverTimes {
  /** kill -> the first agent suspects / declares the gateway dead, the last one does */
  suspect: number;
  deadFirst: number;
  deadAll: number;
  /** kill -> the new gateway published its claim (after its own reconcile) */
  claim: number;
  /** kill -> the last reconcile with changes on any agent, and -> traffic flows on every probed path */
  reconciled: number;
  flowing: number;
}

/**
 * Kill the active gateway of c2 the way a machine dies (SIGKILL, eth0 down at once), probe
 * c1 (v4, v6) and c3 (v4) pods -> the pod behind c2-node-3 every 50 ms until all answer, and break
 * the time down from the agents' logs. The killed agent is restarted after each round and the next
 * round starts as soon as every agent sees it alive (it becomes the next gateway: a failover right
 * after a restart, the harder case).
 */
async function failover(): Promise<BenchResult[]> {
  const lab = `bgf${tag}`.slice(0, 12);
  await labDown(lab);
  const rounds: FailoverTimes[] = [];
  try {
    const { plan } = await labUp(lab, parseLabConfig(DEFAULT_LAB));
    const pod = (node: string) => plan.nodes.find((n) => n.name === node)?.pods[0];
    const dst = pod("c2-node-3");
    const c1 = pod("c1-node-1");
    const c3 = pod("c3-node-1");
    if (!dst?.ipv4 || !dst.ipv6 || !c1?.ipv6 || !c3)
      throw new Error("default lab changed: no c1/c3/c2-node-3 pods");
    const paths: Array<{ ns: string; family: 4 | 6; ip: string }> = [
      { ns: c1.ns, family: 4, ip: dst.ipv4 },
      { ns: c1.ns, family: 6, ip: dst.ipv6 },
      { ns: c3.ns, family: 4, ip: dst.ipv4 },
    ];
    const names = plan.nodes.map((n) => n.name);
    for (let i = 0; i < FAILOVER_REPS; i++) {
      const gw = (await json<{ gateways: Record<string, string> }>(lab, "c1-node-1", "/v1/state")).gateways
        .c2 as string;
      for (const p of paths)
        if (!(await pingOk(p.ns, p.family, p.ip))) throw new Error("no traffic before the kill");
      const offsets = new Map<string, number>();
      for (const n of names) offsets.set(n, (await readFile(`${nodeDir(lab, n)}/agent.log`)).length);
      const t0 = Date.now();
      await labKillAgent(lab, gw, { links: true });
      const firstOk = await Promise.all(
        paths.map(async (p) => {
          while (Date.now() - t0 < 30_000) {
            const t = Date.now();
            if (await pingOk(p.ns, p.family, p.ip)) return t - t0;
            await Bun.sleep(Math.max(0, 50 - (Date.now() - t)));
          }
          return Number.NaN;
        }),
      );
      const flowing = Math.max(...firstOk);
      await Bun.sleep(300);
      const others = names.filter((n) => n !== gw);
      const ev = (await logEvents(lab, others, offsets)).filter((e) => e.t >= t0);
      const at = (pred: (e: (typeof ev)[number]) => boolean, pick: "first" | "last" = "first") => {
        const hits = ev.filter(pred);
        const e = pick === "first" ? hits[0] : hits[hits.length - 1];
        return e ? e.t - t0 : Number.NaN;
      };
      const deadAt = others.map((n) => at((e) => e.node === n && e.msg === `member ${gw} is dead`));
      rounds.push({
        suspect: at((e) => e.msg === `member ${gw} is suspect`),
        deadFirst: Math.min(...deadAt.filter((x) => !Number.isNaN(x))),
        deadAll: Math.max(...deadAt.map((x) => (Number.isNaN(x) ? Number.POSITIVE_INFINITY : x))),
        claim: at((e) => e.msg === "active gateway: claim published"),
        reconciled: at((e) => e.msg === "reconciled" && (e.changes ?? 0) > 0 && e.t - t0 <= flowing, "last"),
        flowing,
      });
      await labRestartAgent(lab, gw);
      for (const n of others) {
        while ((await json<{ members: Record<string, string> }>(lab, n, "/v1/state")).members[gw] !== "alive")
          await Bun.sleep(100);
      }
    }
  } finally {
    await labDown(lab);
  }
  const col = (k: keyof FailoverTimes) => rounds.map((r) => r[k]).filter((x) => Number.isFinite(x));
  const flow = col("flowing");
  const worst = rounds.some((r) => !Number.isFinite(r.flowing))
    ? Number.POSITIVE_INFINITY
    : Math.max(...flow);
  const reaction = rounds.map((r) => r.flowing - r.deadFirst).filter((x) => Number.isFinite(x));
  const n = rounds.length;
  return [
    {
      name: `lab failover (${n} rounds): kill -> first agent suspects, p50`,
      value: percentile(col("suspect"), 50),
      unit: "ms",
    },
    {
      name: "lab failover: kill -> first agent declares it dead, p50",
      value: percentile(col("deadFirst"), 50),
      unit: "ms",
    },
    {
      name: "lab failover: kill -> first agent declares it dead, max",
      value: Math.max(...col("deadFirst")),
      unit: "ms",
    },
    {
      name: "lab failover: kill -> every agent declares it dead, p50",
      value: percentile(col("deadAll"), 50),
      unit: "ms",
    },
    {
      name: "lab failover: kill -> new gateway's claim, p50",
      value: percentile(col("claim"), 50),
      unit: "ms",
    },
    {
      name: "lab failover: first dead -> traffic flows (plan, reconcile, claim, packet), p50",
      value: percentile(reaction, 50),
      unit: "ms",
    },
    { name: "lab failover: first dead -> traffic flows, max", value: Math.max(...reaction), unit: "ms" },
    {
      name: "lab gateway failover until traffic flows (c1 v4+v6, c3 v4) p50",
      value: percentile(flow, 50),
      unit: "ms",
      target: "<= 3000",
    },
    {
      name: "lab gateway failover until traffic flows, max",
      value: worst,
      unit: "ms",
      target: "<= 3000",
      ok: worst <= 3000,
    },
  ];
}

async function rssKb(pid: number | undefined): Promise<number> {
  if (!pid) return Number.NaN;
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? Number.NaN);
}

async function agentsRssMb(lab: string, nodes: string[]): Promise<number[]> {
  return Promise.all(nodes.map(async (n) => (await rssKb(await labAgentPid(lab, n))) / 1024));
}

async function memory(): Promise<BenchResult[]> {
  const idle = Bun.spawn([process.execPath, "-e", "setInterval(() => {}, 1000)"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const lab = `bgm${tag}`.slice(0, 12);
  await labDown(lab);
  try {
    await Bun.sleep(2000);
    const bunIdle = (await rssKb(idle.pid)) / 1024;
    const { plan, token } = await labUp(lab, parseLabConfig(p2pLab(7)));
    const nodes = plan.nodes.map((n) => n.name);
    await Bun.sleep(5000);
    const small = await agentsRssMb(lab, nodes);
    const big = withThousandPeers(plan.topology);
    await agentFetch(agentSocket(lab, nodes[0] as string), "/v1/topology", {
      method: "POST",
      body: big,
      token,
      timeoutMs: 30_000,
    });
    for (const n of nodes) {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const s = await json<{ counts: { nodes: number }; ready: boolean }>(lab, n, "/v1/state").catch(
          () => undefined,
        );
        if (s?.counts.nodes === big.nodes.length && s.ready) break;
        await Bun.sleep(500);
      }
    }
    await Bun.sleep(10_000);
    const withPeers = await agentsRssMb(lab, nodes);
    // A restarted agent takes every replica node as a gossip member: it probes 1,000 unreachable ones.
    const restarted = nodes[1] as string;
    await labRestartAgent(lab, restarted);
    await Bun.sleep(20_000);
    const probing = (await agentsRssMb(lab, [restarted]))[0] as number;
    const after = await agentsRssMb(lab, nodes);
    const members = await json<{ members: Record<string, string> }>(lab, nodes[0] as string, "/v1/state");
    const memberCount = Object.keys(members.members).length;
    const max = Math.max(...withPeers);
    return [
      {
        name: "lab agent RSS idle, 7-node topology (max of 7)",
        value: Math.max(...small),
        unit: "MB",
        baseline: { name: "idle bun", value: bunIdle },
      },
      {
        name: "lab agent RSS idle, replica +1,000 peers (not gossip members) (max of 7)",
        value: max,
        unit: "MB",
        baseline: { name: "idle bun", value: bunIdle },
        target: "<= 80",
        ok: max <= 80,
      },
      {
        name: "lab agent RSS, restarted: 1,000 unreachable gossip members probed (20 s)",
        value: probing,
        unit: "MB",
        target: "<= 80",
        ok: probing <= 80,
      },
      { name: "lab agent RSS after that restart, max of 7", value: Math.max(...after), unit: "MB" },
      {
        name: "gossip members known by an agent that was not restarted",
        value: memberCount,
        unit: "members",
      },
    ];
  } finally {
    idle.kill();
    await labDown(lab);
  }
}

export async function run(): Promise<BenchResult[]> {
  const sizes = (process.env.KOSMOS_BENCH_LAB_SIZES ?? "7,15,30")
    .split(",")
    .map(Number)
    .filter((n) => n >= 3);
  // KOSMOS_BENCH_LAB_PARTS=propagation,failover,memory (default: all)
  const parts = new Set((process.env.KOSMOS_BENCH_LAB_PARTS ?? "propagation,failover,memory").split(","));
  const out: BenchResult[] = [];
  if (parts.has("propagation")) for (const s of sizes) out.push(...(await propagation(s)));
  if (parts.has("failover")) out.push(...(await failover()));
  if (parts.has("memory")) out.push(...(await memory()));
  return out;
}

if (import.meta.main) printResults(await run());
