/**
 * One real agent process at idle (root; no lab): cmd/kosmos-agent.ts started the way labs and the
 * DaemonSet start it (internal/lab/bundle.ts agentCommand: the bundle, BUN_JSC_useBaselineJIT=0), in an
 * anonymous network namespace (`unshare -n`, a veth as eth0, gone with the process), so it programs
 * that namespace only. Its throwaway state directory holds a replica pre-seeded with a 7-node lab
 * topology plus 1,000 peers, so the agent plans routes/FDB/neighbours for all of them, takes them as
 * gossip members and probes them (nothing answers). Figures:
 *  - RSS at idle, max and median over 15 s (5 s resync, like lab agents)  target <= 80 MB
 *  - the same replica seeded over the API after start (peers not gossip members, like the lab bench)
 *  - CPU at idle (the cost of interpreting JS)
 * Baselines in the same run: the previous launch (`bun cmd/kosmos-agent.ts`, source modules, JIT on,
 * same code) and an idle `bun -e` process.
 *
 *   bun test/bench/agent.ts
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AGENT_ENTRY, agentCommand, MIGRATIONS_DIR } from "../../internal/lab/bundle.ts";
import { parseLabConfig } from "../../internal/lab/config.ts";
import { agentFetch } from "../../internal/lab/lab.ts";
import { planLab } from "../../internal/lab/plan.ts";
import { openStore } from "../../internal/store/index.ts";
import type { Node, Topology } from "../../internal/topology/index.ts";
import { type BenchResult, cpuMs, percentile, printResults } from "./lib.ts";

const SETTLE_MS = 5_000;
const WINDOW_MS = 15_000;
const SAMPLE_MS = 500;

/** 1,000 nodes in a cluster of their own whose addresses lead nowhere (RFC 2544 range; also gossip-lab.ts). */
export function withThousandPeers(topo: Topology): Topology {
  const nodes: Node[] = Array.from({ length: 1000 }, (_, i) => ({
    name: `px-${i}`,
    cluster: "px",
    ipv4: `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    podCIDRs: [`100.${64 + Math.floor(i / 256)}.${i % 256}.0/24`],
    gatewayCandidate: false,
    interfaceName: "eth0",
    underlayMTU: 1500,
  }));
  return {
    clusters: [
      ...topo.clusters,
      {
        name: "px",
        networkType: "p2p",
        ipFamily: "ipv4",
        podCIDRs: ["100.64.0.0/10"],
        serviceCIDRs: ["10.199.0.0/16"],
        globalCIDRs: {},
        bridgeCIDRs: { ip: "220.0.0.0/8", ip6: "9480::/16" },
        localCIDRs: { ip: "210.0.0.0/8", ip6: "9470::/16" },
      },
    ],
    nodes: [...topo.nodes, ...nodes],
  };
}

/** The topology of a 7-node P2P lab (3 clusters); the agent runs as its first node. */
function labTopology() {
  const plan = planLab(
    "bagent",
    parseLabConfig({
      clusters: [3, 3, 1].map((nodes, i) => ({
        name: `c${i + 1}`,
        networkType: "p2p" as const,
        ipFamily: "ipv4" as const,
        nodes,
        podsPerNode: 0,
      })),
    }),
  );
  const self = plan.nodes[0];
  if (!self) throw new Error("lab plan without nodes");
  return { topology: plan.topology, self };
}

interface Status {
  rss: number;
  anon: number;
  cpuMs: number;
}

async function status(pid: number): Promise<Status> {
  const s = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? Number.NaN);
  return { rss: kb("VmRSS") / 1024, anon: kb("RssAnon") / 1024, cpuMs: cpuMs(pid) };
}

interface Launch {
  name: string;
  argv: (flags: string[]) => Promise<string[]>;
  /** The agent's whole environment. */
  env: Record<string, string | undefined>;
}

const launches = async (): Promise<{ current: Launch; previous: Launch }> => {
  const { env } = await agentCommand([]);
  const { BUN_JSC_useJIT: _j, BUN_JSC_useBaselineJIT: _b, ...plain } = process.env;
  return {
    current: {
      name: "bundle, JS interpreted",
      argv: async (f) => (await agentCommand(f)).argv,
      env: { ...plain, ...env },
    },
    previous: {
      name: "source, JIT on (previous launch)",
      argv: async (f) => [process.execPath, AGENT_ENTRY, ...f],
      env: { ...plain, KOSMOS_MIGRATIONS_DIR: MIGRATIONS_DIR },
    },
  };
};

interface Run {
  /** RSS samples (MB) over the idle window. */
  rss: number[];
  /** RSS after start with the small topology (API scenario only). */
  small?: number;
  /** CPU ms per s over the window. */
  cpuPerSec: number;
  members: number;
}

/** Start an agent (pre-seeded replica or seeded over the API), let it settle, sample RSS. */
async function runAgent(launch: Launch, mode: "preseeded" | "api"): Promise<Run> {
  const { topology, self } = labTopology();
  const big = withThousandPeers(topology);
  const dir = await mkdtemp(join(tmpdir(), "kosmos-bench-agent-"));
  const token = "bench-token-0123456789abcdef";
  await writeFile(join(dir, "secret"), crypto.getRandomValues(new Uint8Array(32)));
  if (mode === "preseeded") {
    const store = await openStore(join(dir, "kosmos.db"), { node: self.name });
    store.seed(big);
    store.close();
  }
  const flags = [
    "--node",
    self.name,
    "--data-dir",
    dir,
    "--listen",
    `${self.ipv4}:5678`,
    "--token",
    token,
    "--secret-file",
    join(dir, "secret"),
    "--resync",
    "5000",
    "--log-level",
    "warn",
  ];
  const setup = `ip link set lo up && ip link add eth0 type veth peer name eth0p && ip link set eth0p up && ip link set eth0 up && ip addr add ${self.ipv4}/24 dev eth0 && exec "$@"`;
  const proc = Bun.spawn(["unshare", "-n", "sh", "-c", setup, "sh", ...(await launch.argv(flags))], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: Bun.file(join(dir, "agent.log")),
    env: launch.env,
  });
  const sock = join(dir, "agent.sock");
  const state = async () =>
    (await (await agentFetch(sock, "/v1/state", { timeoutMs: 5000 })).json()) as {
      ready: boolean;
      counts: { nodes: number };
      members: Record<string, string>;
    };
  const until = async (what: string, ok: () => Promise<boolean>) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) break;
      if (await ok().catch(() => false)) return;
      await Bun.sleep(100);
    }
    const log = await readFile(join(dir, "agent.log"), "utf8").catch(() => "");
    throw new Error(`agent (${launch.name}) never ${what}; log tail:\n${log.slice(-1500)}`);
  };
  try {
    let small: number | undefined;
    if (mode === "api") {
      await until("answered", async () => (await agentFetch(sock, "/healthz", { timeoutMs: 1000 })).ok);
      await agentFetch(sock, "/v1/topology", { method: "POST", body: topology, token, timeoutMs: 10_000 });
      await until("got ready", async () => (await state()).ready);
      await Bun.sleep(SETTLE_MS);
      small = (await status(proc.pid)).rss;
      await agentFetch(sock, "/v1/topology", { method: "POST", body: big, token, timeoutMs: 30_000 });
    }
    await until("applied 1,007 nodes", async () => {
      const s = await state();
      return s.ready && s.counts.nodes === big.nodes.length;
    });
    await Bun.sleep(SETTLE_MS);
    const first = await status(proc.pid);
    const rss: number[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < WINDOW_MS) {
      await Bun.sleep(SAMPLE_MS);
      rss.push((await status(proc.pid)).rss);
    }
    const last = await status(proc.pid);
    const members = Object.keys((await state()).members).length;
    const secs = (performance.now() - t0) / 1000;
    return { rss, small, cpuPerSec: (last.cpuMs - first.cpuMs) / secs, members };
  } finally {
    proc.kill("SIGTERM");
    const killer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    await proc.exited;
    clearTimeout(killer);
    await rm(dir, { recursive: true, force: true });
  }
}

async function idleBunMb(): Promise<number> {
  const idle = Bun.spawn([process.execPath, "-e", "setInterval(() => {}, 1000)"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  try {
    await Bun.sleep(2000);
    return (await status(idle.pid)).rss;
  } finally {
    idle.kill();
    await idle.exited;
  }
}

export async function run(): Promise<BenchResult[]> {
  if (Bun.spawnSync(["unshare", "-n", "true"]).exitCode !== 0) {
    throw new Error("the agent bench needs root (it runs the agent in an anonymous network namespace)");
  }
  const { current, previous } = await launches();
  const bun = await idleBunMb();
  // Interleaved: the machine's load (parallel work on 2 cores) hits both launches alike.
  const cur = await runAgent(current, "preseeded");
  const prev = await runAgent(previous, "preseeded");
  const curApi = await runAgent(current, "api");
  const prevApi = await runAgent(previous, "api");
  const max = (r: Run) => Math.max(...r.rss);
  const p50 = (r: Run) => percentile(r.rss, 50);
  const vs = (r: Run, f: (r: Run) => number) => ({ name: previous.name, value: f(r) });
  return [
    {
      name: "agent RSS idle, replica with 1,000 peers (pre-seeded: gossip members), max over 15 s",
      value: max(cur),
      unit: "MB",
      baseline: vs(prev, max),
      target: "<= 80",
      ok: max(cur) <= 80,
    },
    {
      name: "agent RSS idle, replica with 1,000 peers (pre-seeded), median",
      value: p50(cur),
      unit: "MB",
      baseline: vs(prev, p50),
    },
    {
      name: "agent RSS idle, 1,000 peers seeded over the API (not gossip members), max over 15 s",
      value: max(curApi),
      unit: "MB",
      baseline: vs(prevApi, max),
      target: "<= 80",
      ok: max(curApi) <= 80,
    },
    {
      name: "agent RSS idle, 7-node topology (before the 1,000 peers)",
      value: curApi.small ?? Number.NaN,
      unit: "MB",
      baseline: { name: "idle bun -e", value: bun },
    },
    {
      name: "agent CPU at idle, 1,000 peers pre-seeded (probing 1,006 members, resync 5 s)",
      value: cur.cpuPerSec,
      unit: "ms/s",
      baseline: vs(prev, (r) => r.cpuPerSec),
    },
    {
      name: "agent CPU at idle, 1,000 peers seeded over the API (resync 5 s)",
      value: curApi.cpuPerSec,
      unit: "ms/s",
      baseline: vs(prevApi, (r) => r.cpuPerSec),
    },
    { name: "gossip members of the pre-seeded agent", value: cur.members, unit: "members" },
  ];
}

if (import.meta.main) printResults(await run());
