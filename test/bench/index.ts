/**
 * `bun run bench [-- module...]`: runs every bench module (or the named ones) in order, prints one
 * table per module and a summary of the figures that have a target. Exits 0 when targets are missed
 * (the tables report them); non-zero only when a module crashes.
 *
 * Each module runs in its own child process (`index.ts --child <module> <result file>`), so one
 * module's heap (e.g. the planner's 100k-node topology) does not inflate another's RSS figure.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Table from "cli-table3";
import type { BenchResult } from "./lib.ts";

type Runner = () => Promise<BenchResult[]>;

/** Module name -> loader (lazy, so a filter only loads what it runs). */
export const MODULES: Record<string, () => Promise<{ run: Runner }>> = {
  planner: () => import("./planner.ts"),
  dataplane: () => import("./dataplane.ts"),
  gossip: () => import("./gossip.ts"),
  agent: () => import("./agent.ts"),
  exec: () => import("./exec.ts"),
  throughput: () => import("./throughput.ts"),
  clustertree: () => import("./clustertree.ts"),
  "clustertree-nodes": () => import("./clustertree-nodes.ts"),
  dns: () => import("./dns.ts"),
  "mcs-propagation": () => import("./mcs-propagation.ts"),
  clusterset: () => import("./clusterset.ts"),
  "clusterset-reconcile": () => import("./clusterset-reconcile.ts"),
  kubelet: () => import("./kubelet.ts"),
  // Real-Kubernetes lab with Kosmos installed (--mcs): pod Ready → its address from every node's DNS.
  "mcs-lab": () => import("./mcs-lab.ts"),
};

const fmt = (v: number): string => {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1000
    ? v.toFixed(0)
    : a >= 10
      ? v.toFixed(1)
      : a >= 0.01 || a === 0
        ? v.toFixed(3)
        : v.toPrecision(3);
};

/** value / baseline, when both are finite and the baseline is not zero. */
export function ratio(r: BenchResult): number | undefined {
  if (
    !r.baseline ||
    !Number.isFinite(r.value) ||
    !Number.isFinite(r.baseline.value) ||
    r.baseline.value === 0
  )
    return undefined;
  return r.value / r.baseline.value;
}

/** No ANSI colours when the output is a file or a pipe (e.g. pasted into docs/benchmarks.md). */
const style = process.stdout.isTTY ? {} : { style: { head: [], border: [] } };

const verdict = (r: BenchResult): string => (r.ok === undefined ? "" : r.ok ? "✓" : "✗");

function row(r: BenchResult, module?: string): string[] {
  const q = ratio(r);
  return [
    ...(module ? [module] : []),
    r.name,
    `${fmt(r.value)} ${r.unit}`.trim(),
    r.baseline ? `${r.baseline.name}: ${fmt(r.baseline.value)}` : "",
    q === undefined ? "" : `${fmt(q)}x`,
    r.target ?? "",
    verdict(r),
  ];
}

export function renderTable(results: BenchResult[], module?: string): string {
  const head = ["figure", "value", "baseline (same run)", "ratio", "target", ""];
  const t = new Table({
    head: module ? ["module", ...head] : head,
    ...style,
    wordWrap: true,
    colWidths: module ? [12, 44, 18, 26, 10, 18, 3] : [50, 20, 28, 10, 20, 3],
  });
  for (const r of results) t.push(row(r, module));
  return t.toString();
}

/** Run one module in a child process; its results come back through a temp JSON file. */
async function runChild(name: string): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), "kosmos-bench-"));
  try {
    const out = join(dir, "results.json");
    const proc = Bun.spawn([process.execPath, import.meta.path, "--child", name, out], {
      stdout: "inherit",
      stderr: "inherit",
    });
    const code = await proc.exited;
    if (code !== 0) throw new Error(`bench ${name} exited with ${code}`);
    // JSON turns NaN/Infinity into null: restore them as NaN
    const rows = JSON.parse(await readFile(out, "utf8")) as BenchResult[];
    return rows.map((r) => ({ ...r, value: r.value ?? Number.NaN }));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function child(name: string, out: string): Promise<void> {
  const loader = MODULES[name];
  if (!loader) throw new Error(`unknown bench module ${name}`);
  const results = await (await loader()).run();
  await Bun.write(out, JSON.stringify(results));
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === "--child") {
    await child(argv[1] ?? "", argv[2] ?? "");
    return 0;
  }
  const wanted = argv.length > 0 ? argv : Object.keys(MODULES);
  const unknown = wanted.filter((m) => !(m in MODULES));
  if (unknown.length > 0) {
    console.error(
      `unknown bench module(s): ${unknown.join(", ")}; known: ${Object.keys(MODULES).join(", ")}`,
    );
    return 2;
  }
  const t0 = performance.now();
  const all: Array<{ module: string; r: BenchResult }> = [];
  const crashed: string[] = [];
  for (const name of wanted) {
    const t = performance.now();
    console.log(`\n== ${name}`);
    try {
      const results = await runChild(name);
      console.log(renderTable(results));
      console.log(`(${name}: ${((performance.now() - t) / 1000).toFixed(1)} s)`);
      for (const r of results) all.push({ module: name, r });
    } catch (err) {
      crashed.push(name);
      console.error(`bench ${name} crashed: ${(err as Error).stack ?? String(err)}`);
    }
  }
  const targeted = all.filter((x) => x.r.ok !== undefined);
  console.log("\n== summary (figures with a target)");
  const t = new Table({
    head: ["module", "figure", "value", "baseline (same run)", "ratio", "target", ""],
    ...style,
    wordWrap: true,
    colWidths: [12, 44, 18, 26, 10, 18, 3],
  });
  for (const x of targeted) t.push(row(x.r, x.module));
  console.log(t.toString());
  const met = targeted.filter((x) => x.r.ok).length;
  console.log(
    `${met}/${targeted.length} targets met${crashed.length ? `; crashed: ${crashed.join(", ")}` : ""} (wall ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  return crashed.length > 0 ? 1 : 0;
}

if (import.meta.main) process.exit(await main(process.argv.slice(2).filter((a) => a !== "--")));
