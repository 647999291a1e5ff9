/**
 * Where the reconcile into 1,000 imported ClusterSetIP services spends its time (issue 15; run
 * directly: `bun test/bench/clusterset-reconcile.ts`). The clusterset bench reports one figure,
 * "reconcile into 1,000 imports: ~2.9 s"; this breaks it down, scenario by scenario, against the
 * floor no reconciler can beat: `nft -f` of the same script alone, on the same kernel, in the same run.
 *
 * The real Reconciler and planner step (planServices), as an agent runs them, in a process inside a
 * fresh network namespace (so commands run as the agent's do, without `ip netns exec` per command).
 * Every command the Reconciler runs is timed by a wrapping Runner and assigned to the phase it ran
 * in (the report's `phasesMs`: plan = read + diff, apply, verify = re-read). Scenarios:
 *   - agent start: nothing → 1,000 imports;
 *   - 1 → 1,000 imports (the clusterset bench's figure);
 *   - one endpoint added among 1,000 imports, from a kernel read (the periodic/resync path);
 *   - the same from the last converged plan (`fromLast`: the event-driven path of the agent loop);
 *   - 1,000 imports unchanged (the periodic resync that finds nothing to do, listing the nft table
 *     or, 5 resyncs of 6, trusting it while the nft monitor runs; the floor of both is
 *     `nft list table` alone).
 * Medians of ROUNDS rounds; each round restores the scenario's start state untimed, then times the
 * reconcile, then restores again and times the baseline command.
 */
import type { HostState } from "../../internal/dataplane/index.ts";
import { Reconciler, renderNft } from "../../internal/dataplane/index.ts";
import { buildContext } from "../../internal/planner/context.ts";
import { planServices } from "../../internal/planner/steps/services.ts";
import { type RunOptions, type RunResult, type Runner, spawnRunner } from "../../internal/sys/index.ts";
import { NetnsScope } from "../helpers/netns.ts";
import { clusterSetTopology, hostState } from "./clusterset.ts";
import { type BenchResult, percentile, printResults } from "./lib.ts";

const ROUNDS = Number(process.env.CSREC_ROUNDS ?? 7);
const N = 1000;

interface Cmd {
  what: string;
  start: number;
  end: number;
}

/** Times every command; `take()` hands over (and forgets) the ones run so far. */
class TimingRunner implements Runner {
  private cmds: Cmd[] = [];
  constructor(private readonly inner: Runner) {}
  async run(argv: string[], opts?: RunOptions): Promise<RunResult> {
    const start = performance.now();
    const r = await this.inner.run(argv, opts);
    this.cmds.push({ what: label(argv), start, end: performance.now() });
    return r;
  }
  take(): Cmd[] {
    const out = this.cmds;
    this.cmds = [];
    return out;
  }
}

function label(argv: string[]): string {
  if (argv[0] === "nft") return argv[1] === "-f" ? "nft -f" : `nft ${argv[1]}`;
  return argv[0] ?? "";
}

/** Wall time covered by a set of (possibly parallel) commands. */
function wall(cmds: Cmd[]): number {
  if (cmds.length === 0) return 0;
  return Math.max(...cmds.map((c) => c.end)) - Math.min(...cmds.map((c) => c.start));
}

const sum = (cmds: Cmd[], what: string): number =>
  cmds.filter((c) => c.what === what).reduce((a, c) => a + c.end - c.start, 0);

interface Sample {
  total: number;
  plan: number;
  planCmds: number;
  planNftList: number;
  apply: number;
  applyNftF: number;
  applyNftList: number;
  verify: number;
  verifyCmds: number;
  baseline: number;
}

const median = (xs: number[]): number => percentile(xs, 50);

interface Scenario {
  name: string;
  /** Bring the kernel (and the reconciler's memory) to the start state. */
  from: (rec: Reconciler) => Promise<void>;
  to: HostState;
  fromLast?: boolean;
  /** A resync whose nft table the agent trusts (agent/nft-trust.ts: 5 resyncs of 6). */
  trustNft?: boolean;
  baseline: { name: string; argv: string[]; input?: string };
}

async function sample(sc: Scenario, rec: Reconciler, runner: TimingRunner): Promise<Sample> {
  await sc.from(rec);
  runner.take();
  const t0 = performance.now();
  const rep = await rec.reconcile(sc.to, { fromLast: sc.fromLast === true, trustNft: sc.trustNft === true });
  if (sc.trustNft && rep.nftRead !== "trusted")
    throw new Error(`${sc.name}: the nft table was ${rep.nftRead}`);
  const total = performance.now() - t0;
  if (rep.errors.length || rep.residual) throw new Error(`${sc.name}: ${JSON.stringify(rep.errors)}`);
  const p = rep.phasesMs ?? { plan: 0, apply: 0, verify: 0 };
  const cmds = runner.take();
  const inPhase = (a: number, b: number) => cmds.filter((c) => c.start >= t0 + a && c.start < t0 + b);
  const planCmds = inPhase(0, p.plan);
  const applyCmds = inPhase(p.plan, p.plan + p.apply);
  const verifyCmds = inPhase(p.plan + p.apply, Number.POSITIVE_INFINITY);
  await sc.from(rec);
  runner.take();
  const b0 = performance.now();
  const b = await runner.run(
    sc.baseline.argv,
    sc.baseline.input === undefined ? {} : { input: sc.baseline.input },
  );
  const baseline = performance.now() - b0;
  if (b.code !== 0) throw new Error(`${sc.baseline.name}: ${b.stderr}`);
  return {
    total,
    plan: p.plan,
    planCmds: wall(planCmds),
    planNftList: sum(planCmds, "nft list"),
    apply: p.apply,
    applyNftF: sum(applyCmds, "nft -f"),
    applyNftList: sum(applyCmds, "nft list"),
    verify: p.verify,
    verifyCmds: wall(verifyCmds),
    baseline,
  };
}

function rows(sc: Scenario, s: Sample[]): BenchResult[] {
  const m = (k: keyof Sample) => median(s.map((x) => x[k]));
  const r = (name: string, k: keyof Sample): BenchResult => ({ name: `  ${name}`, value: m(k), unit: "ms" });
  return [
    {
      name: `${sc.name}: reconcile, median of ${s.length}`,
      value: m("total"),
      unit: "ms",
      baseline: { name: sc.baseline.name, value: m("baseline") },
    },
    r("plan: read the kernel + diff", "plan"),
    r("  of which the read commands (wall, in parallel)", "planCmds"),
    r("  of which `nft list table` (the read's largest)", "planNftList"),
    r("apply", "apply"),
    r("  of which `nft -f` (the atomic table replacement)", "applyNftF"),
    r("  of which `nft list table` (read-back for the tamper check)", "applyNftList"),
    r("verify: re-read + diff", "verify"),
    r("  of which the read commands (wall)", "verifyCmds"),
  ];
}

/** The measured part, run inside the namespace. */
async function inner(): Promise<BenchResult[]> {
  const runner = new TimingRunner(spawnRunner());
  const rec = new Reconciler({ runner });
  const tp = performance.now();
  const topo = clusterSetTopology(N);
  const vips = planServices(buildContext({ topology: topo, self: "c1-n1" }));
  const planMs = performance.now() - tp;
  const one = hostState(1);
  const big = hostState(N);
  const tr = performance.now();
  const script = renderNft(big.nft).script;
  const renderMs = performance.now() - tr;
  // one more ready endpoint for the first service: a change among 1,000 imports
  topo.serviceEndpoints?.[0]?.endpoints.push({ addresses: ["10.60.1.3"], ready: true, node: "c1-n1" });
  const bigPlus = structuredClone(big);
  bigPlus.nft.serviceVips = planServices(buildContext({ topology: topo, self: "c1-n1" }));
  const plusScript = renderNft(bigPlus.nft).script;
  const reach = (hs: HostState) => async (rec: Reconciler) => {
    const r = await rec.reconcile(hs);
    if (r.errors.length) throw new Error(JSON.stringify(r.errors));
  };
  const nftF = (input: string) => ({
    name: "`nft -f` of the same script alone",
    argv: ["nft", "-f", "-"],
    input,
  });
  const scenarios: Scenario[] = [
    {
      name: "agent start: nothing → 1,000 imports",
      from: async (rec) => void (await rec.uninstall()),
      to: big,
      baseline: nftF(script),
    },
    { name: "1 → 1,000 imports", from: reach(one), to: big, baseline: nftF(script) },
    {
      name: "1,000 imports, one endpoint added (kernel read)",
      from: reach(big),
      to: bigPlus,
      baseline: nftF(plusScript),
    },
    {
      name: "1,000 imports, one endpoint added (from the last plan)",
      from: reach(big),
      to: bigPlus,
      fromLast: true,
      baseline: nftF(plusScript),
    },
    {
      name: "1,000 imports unchanged (periodic resync)",
      from: reach(big),
      to: big,
      baseline: { name: "`nft list table` alone", argv: ["nft", "list", "table", "inet", "kosmos"] },
    },
    {
      name: "1,000 imports unchanged (periodic resync, nft table trusted: 5 of 6 resyncs)",
      from: reach(big),
      to: big,
      trustNft: true,
      baseline: { name: "`nft list table` alone", argv: ["nft", "list", "table", "inet", "kosmos"] },
    },
  ];
  const out: BenchResult[] = [
    { name: `planner step planServices, ${N} imports (pure)`, value: planMs, unit: "ms" },
    { name: `render the nft script, ${N} imports (${vips.length} ports; pure)`, value: renderMs, unit: "ms" },
    { name: "the nft script", value: script.length / 1024, unit: "KiB" },
  ];
  for (const sc of scenarios) {
    const s: Sample[] = [];
    for (let i = 0; i < ROUNDS; i++) s.push(await sample(sc, rec, runner));
    out.push(...rows(sc, s));
  }
  await rec.uninstall();
  return out;
}

export async function run(): Promise<BenchResult[]> {
  const scope = new NetnsScope();
  try {
    const ns = await scope.netns("csrec");
    const r = await ns.exec([process.execPath, import.meta.path, "--inner"], { allowFail: true });
    if (r.code !== 0) throw new Error(`inner bench failed (exit ${r.code}): ${r.stderr.slice(-1500)}`);
    const line = r.stdout.trim().split("\n").at(-1) ?? "";
    return JSON.parse(line) as BenchResult[];
  } finally {
    await scope.cleanup();
  }
}

if (import.meta.main) {
  if (process.argv.includes("--inner")) console.log(JSON.stringify(await inner()));
  else printResults(await run());
}
