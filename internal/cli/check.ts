/**
 * `kosmosctl check`: prove that every node and pod reaches every other (within and across
 * clusters), find the broken pairs and say which hop is broken. See docs/check.md.
 */
import { readFile } from "node:fs/promises";
import { Command, InvalidArgumentError, Option } from "commander";
import { parse as parseYaml } from "yaml";
import {
  AgentExecutor,
  CHECK_MODES,
  CHECK_PROTOS,
  type CheckMode,
  type CheckOptions,
  type CheckProto,
  type CheckReport,
  DEFAULT_RESULTS,
  type Family,
  failedKeys,
  hasDnsTargets,
  type Inventory,
  loadLabInventory,
  loadReport,
  mergeResume,
  NetcheckError,
  type PairResult,
  parseResolverChoice,
  type ResolverChoice,
  runCheck,
  saveReport,
} from "../netcheck/index.ts";
import { clustersetAction } from "./check-clusterset.ts";
import { clustersetInventoryAction } from "./check-clusterset-inventory.ts";
import { FAIL, OK, type OutputFormat, parseOutput, printData, progressBar, renderTable } from "./output.ts";

const DEFAULT_LAB_NAME = process.env.KOSMOS_LAB ?? "kosmos";

function parseMode(v: string): CheckMode {
  if ((CHECK_MODES as readonly string[]).includes(v)) return v as CheckMode;
  throw new InvalidArgumentError(`mode must be one of ${CHECK_MODES.join(", ")}`);
}

function parseProtocols(v: string): CheckProto[] {
  const list = v
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  if (list.length === 0) throw new InvalidArgumentError("give at least one protocol");
  for (const p of list) {
    if (!(CHECK_PROTOS as readonly string[]).includes(p)) {
      throw new InvalidArgumentError(`unknown protocol "${p}" (use ${CHECK_PROTOS.join(", ")})`);
    }
  }
  return [...new Set(list)] as CheckProto[];
}

function parseFamily(v: string): Family[] {
  if (v === "4" || v === "ipv4") return [4];
  if (v === "6" || v === "ipv6") return [6];
  if (v === "both" || v === "dual") return [4, 6];
  throw new InvalidArgumentError("must be 4, 6 or both");
}

function intIn(min: number, max: number, what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max)
      throw new InvalidArgumentError(`${what} must be an integer from ${min} to ${max}`);
    return n;
  };
}

function parseResolver(v: string): ResolverChoice {
  const r = parseResolverChoice(v);
  if (!r) throw new InvalidArgumentError("must be resolv.conf, node or an IP address");
  return r;
}

function parseList(v: string): string[] {
  return v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A real cluster set: a YAML/JSON file with clusters, agents (url + token/fingerprint) and endpoints. */
async function loadInventoryFile(file: string): Promise<Inventory> {
  let raw: unknown;
  try {
    raw = parseYaml(await readFile(file, "utf8"));
  } catch (e) {
    throw new NetcheckError(
      "INVENTORY",
      `cannot read inventory ${file}: ${(e as Error).message}`,
      "see docs/check.md for its format",
    );
  }
  const inv = raw as Partial<Inventory>;
  if (
    !inv ||
    !Array.isArray(inv.clusters) ||
    !Array.isArray(inv.endpoints) ||
    typeof inv.agents !== "object" ||
    !inv.agents
  ) {
    throw new NetcheckError(
      "INVENTORY",
      `${file}: needs clusters, endpoints and agents`,
      "see docs/check.md for its format",
    );
  }
  for (const e of inv.endpoints) {
    if (!e.id || !e.cluster || !e.node || (e.kind !== "node" && e.kind !== "pod")) {
      throw new NetcheckError(
        "INVENTORY",
        `${file}: endpoint ${JSON.stringify(e)} needs id, kind (node|pod), cluster, node`,
        "see docs/check.md",
      );
    }
    if (!inv.agents[e.node])
      throw new NetcheckError("INVENTORY", `${file}: no agent for node ${e.node}`, "add it under agents:");
    e.execPrefix ??= [];
  }
  return {
    name: inv.name ?? file,
    clusters: inv.clusters.map((c) => ({ ...c, podEgressSNAT: c.podEgressSNAT ?? true })),
    endpoints: inv.endpoints,
    agents: inv.agents,
  };
}

/** A progress bar on a terminal; otherwise a line at most every 2 s (CI logs stay short). */
function checkProgress(quiet: boolean): {
  update(done: number, total: number, step: string): void;
  stop(): void;
} {
  if (quiet) return { update() {}, stop() {} };
  let bar: ReturnType<typeof progressBar> | undefined;
  let last = 0;
  return {
    update(done, total, step) {
      if (process.stderr.isTTY) {
        bar ??= progressBar(total, "checking");
        bar.update(done, step);
      } else if (Date.now() - last > 2000 || done === total) {
        last = Date.now();
        process.stderr.write(`checking: ${done}/${total} pairs\n`);
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

function protoMarks(r: PairResult, ip: string): string {
  return r.probes
    .filter((p) => p.ip === ip)
    .map((p) => `${p.ok ? OK : FAIL}${p.proto}${p.size ? `/${p.size}` : ""}`)
    .join(" ");
}

export function failureRows(results: PairResult[]): Array<Array<string | number>> {
  const rows: Array<Array<string | number>> = [];
  for (const r of results) {
    if (r.ok) continue;
    const ips = [...new Set(r.probes.filter((p) => !p.ok).map((p) => p.ip))];
    for (const ip of ips) {
      const log = r.probes
        .filter((p) => p.ip === ip && !p.ok)
        .map((p) => `${p.proto}: ${p.detail}`)
        .join("; ");
      rows.push([r.sn, r.src, r.dst, ip, protoMarks(r, ip), log]);
    }
  }
  return rows;
}

export function renderReport(rep: CheckReport, shown: PairResult[]): string {
  const lines: string[] = [];
  const failed = shown.filter((r) => !r.ok);
  if (failed.length) {
    lines.push(
      renderTable(["S/N", "SOURCE", "DESTINATION", "TARGET IP", "RESULT", "LOG"], failureRows(failed)),
    );
    lines.push("Diagnosis:");
    for (const r of failed) {
      lines.push(`  #${r.sn} ${r.src} → ${r.dst}`);
      for (const f of r.diagnosis ?? []) lines.push(`      [${f.hop}] ${f.message}`);
    }
  }
  for (const [node, err] of Object.entries(rep.agentErrors))
    lines.push(`warning: ${err} (probes from ${node} failed)`);
  const bySkip = new Map<string, number>();
  for (const s of rep.skipped) bySkip.set(s.reason, (bySkip.get(s.reason) ?? 0) + 1);
  if (bySkip.size) {
    lines.push(`skipped ${rep.skipped.length} pairs nobody is meant to carry:`);
    for (const [reason, n] of bySkip) lines.push(`  ${n} × ${reason}`);
  }
  const okN = shown.length - failed.length;
  const head = rep.resumed !== undefined ? `re-checked ${shown.length} pairs that failed last time: ` : "";
  lines.push(
    `${head}${okN}/${shown.length} pairs passed (${shown.reduce((a, r) => a + r.probes.length, 0)} probes, mode ${rep.options.mode}, ${rep.options.protocols.join(",")}${rep.options.packetSize ? `, ${rep.options.packetSize}-byte DF packets` : ""}) in ${(rep.durationMs / 1000).toFixed(1)} s ${failed.length ? FAIL : OK}`,
  );
  return lines.join("\n");
}

interface CheckFlags {
  lab?: boolean;
  name: string;
  inventory?: string;
  mode: CheckMode;
  protocol: CheckProto[];
  ipFamily: Family[];
  src?: string[];
  dst?: string[];
  packetSize?: number;
  concurrency: number;
  timeout: number;
  retries: number;
  intra: boolean;
  dnsName: string;
  clusterset?: boolean;
  resolver: ResolverChoice;
  output: OutputFormat;
  results: string;
  resume?: boolean;
  diagnose: boolean;
}

export function checkCommand(): Command {
  const check = new Command("check").description(
    "check that every node/pod reaches every other within and across clusters; diagnose the broken pairs",
  );
  return withCheckOptions(check).action(checkAction);
}

/** The flags of `kosmosctl check` (CheckFlags). */
function withCheckOptions(cmd: Command): Command {
  return cmd
    .option("--lab", "check a `kosmosctl lab` (its agents, nodes and pods)")
    .addOption(new Option("--name <lab>", "lab name with --lab").default(DEFAULT_LAB_NAME))
    .option(
      "--inventory <file>",
      "clusters, agents and endpoints of a real cluster set (YAML; see docs/check.md)",
    )
    .addOption(
      new Option("-m, --mode <mode>", `pairs to check: ${CHECK_MODES.join(" | ")}`)
        .default("pod")
        .argParser(parseMode),
    )
    .addOption(
      new Option(
        "-p, --protocol <list>",
        `comma list of ${CHECK_PROTOS.join(", ")}; dns alone (with --lab, or an inventory without dnsPort targets) asks every pod's resolver for every clusterset name (ServiceImport) and checks the answers`,
      )
        .default(["icmp", "tcp"], "icmp,tcp")
        .argParser(parseProtocols),
    )
    .addOption(
      new Option("--ip-family <f>", "4 | 6 | both (both addresses of dual-stack targets)")
        .default([4, 6], "both")
        .argParser(parseFamily),
    )
    .addOption(
      new Option("--src <clusters>", "only sources in these clusters (comma list)").argParser(parseList),
    )
    .addOption(
      new Option("--dst <clusters>", "only destinations in these clusters (comma list)").argParser(parseList),
    )
    .addOption(
      new Option(
        "--packet-size <bytes>",
        "ICMP probes send IP packets of this size with don't-fragment (MTU black holes)",
      ).argParser(intIn(68, 65535, "--packet-size")),
    )
    .addOption(
      new Option("--concurrency <n>", "probes in flight at most")
        .default(128)
        .argParser(intIn(1, 4096, "--concurrency")),
    )
    .addOption(
      new Option("--timeout <seconds>", "per-probe timeout").default(2).argParser(intIn(1, 60, "--timeout")),
    )
    .addOption(
      new Option("--retries <n>", "try a failed probe again n times before the pair counts as failed")
        .default(1)
        .argParser(intIn(0, 5, "--retries")),
    )
    .option("--no-intra", "skip pairs inside one cluster (cross-cluster only)")
    .option("--dns-name <name>", "name dns probes ask for", "kubernetes.default.svc.cluster.local")
    .option(
      "--clusterset",
      "check the clusterset names (ServiceImports) from every pod: what -p dns alone does with --lab, or with an inventory without DNS server targets (dnsPort)",
    )
    .addOption(
      new Option(
        "--resolver <r>",
        "clusterset check with --inventory: the resolver pods ask — resolv.conf (the pod's own), node (its node's address: the agent's DNS with install --mcs) or an IP address",
      )
        .default({ kind: "resolv.conf" }, "resolv.conf")
        .argParser(parseResolver),
    )
    .addOption(
      new Option("-o, --output <format>", "table | json | yaml").default("table").argParser(parseOutput),
    )
    .option("--results <file>", "results file (written after each run, read by --resume)", DEFAULT_RESULTS)
    .option("--resume", "re-check only the pairs that failed in the results file (with its options)")
    .option("--no-diagnose", "do not diagnose failed pairs");
}

/** `kosmosctl check`: pick the inventory, run (or resume) the check, save and print the report. */
async function checkAction(o: CheckFlags): Promise<void> {
  if (o.lab && o.inventory)
    throw new NetcheckError("BAD_FLAG", "--lab and --inventory exclude each other", "pick one");
  // A lab has no DNS server targets: `-p dns` alone checks the clusterset names from every pod; so
  // does an inventory without any (`dnsPort`), and --clusterset with either.
  const dnsOnly = o.protocol.length === 1 && o.protocol[0] === "dns";
  if (o.lab && !o.resume && (dnsOnly || o.clusterset)) return clustersetAction(o);
  let fromFile: Inventory | undefined;
  if (o.inventory && !o.resume && (dnsOnly || o.clusterset)) {
    fromFile = await loadInventoryFile(o.inventory);
    if (o.clusterset || !hasDnsTargets(fromFile)) return clustersetInventoryAction(o, fromFile, o.inventory);
  }
  let prev: CheckReport | undefined;
  let opts: CheckOptions = {
    mode: o.mode,
    protocols: o.protocol,
    families: o.ipFamily,
    srcClusters: o.src,
    dstClusters: o.dst,
    packetSize: o.packetSize,
    concurrency: o.concurrency,
    timeoutSec: o.timeout,
    retries: o.retries,
    intraCluster: o.intra,
    dnsName: o.dnsName,
  };
  if (o.resume) {
    prev = await loadReport(o.results);
    opts = { ...prev.options, concurrency: o.concurrency, timeoutSec: o.timeout };
  }
  let inv: Inventory;
  if (o.inventory) inv = fromFile ?? (await loadInventoryFile(o.inventory));
  else if (o.lab || prev?.inventory.startsWith("lab/")) {
    inv = await loadLabInventory(prev && !o.lab ? prev.inventory.slice(4) : o.name);
  } else {
    throw new NetcheckError(
      "BAD_FLAG",
      "what to check? give --lab (a kosmosctl lab) or --inventory FILE",
      "e.g. kosmosctl check --lab",
    );
  }
  if (prev && prev.inventory !== inv.name) {
    throw new NetcheckError(
      "RESULTS",
      `${o.results} holds results of ${prev.inventory}, not ${inv.name}`,
      "use --results to pick the right file",
    );
  }
  const only = prev ? failedKeys(prev) : undefined;
  if (prev && only?.size === 0) {
    process.stdout.write(`nothing to resume: all ${prev.total} pairs passed in ${o.results}\n`);
    return;
  }
  const progress = checkProgress(o.output !== "table");
  const exec = new AgentExecutor(inv.agents);
  let rep: CheckReport;
  try {
    rep = await runCheck(inv, opts, exec, {
      only,
      noDiagnose: !o.diagnose,
      onProgress: (d, t, step) => progress.update(d, t, step),
    });
  } finally {
    progress.stop();
  }
  const shown = rep.results;
  const saved = prev ? mergeResume(prev, rep) : rep;
  if (prev) {
    // Show the re-checked pairs with their original serial numbers.
    const sn = new Map(prev.results.map((r) => [r.key, r.sn]));
    for (const r of shown) r.sn = sn.get(r.key) ?? r.sn;
  }
  await saveReport(o.results, saved);
  printData(o.output, prev ? { ...saved, results: shown } : rep, () =>
    renderReport(prev ? { ...rep, resumed: shown.length } : rep, shown),
  );
  if (o.output === "table")
    process.stdout.write(
      `results: ${o.results}${saved.failed ? " (kosmosctl check --resume re-checks the failed pairs)" : ""}\n`,
    );
  process.exitCode = shown.some((r) => !r.ok) ? 1 : 0;
}
