/**
 * `kosmosctl check` end to end: matrix → agents' health → probes → per-pair results → diagnosis of
 * the failed pairs (facts from the nodes on their paths) → report. --resume re-checks only the
 * pairs that failed in a previous report and merges the outcome into it.
 */
import { type AgentExecutor, checkAgents, NetcheckError } from "./agents.ts";
import { interpretDnsReply } from "./dns.ts";
import { diagnose } from "./diagnose.ts";
import { gatherFacts, type NodeFacts } from "./facts.ts";
import { buildMatrix, dnsId } from "./matrix.ts";
import { runProbes } from "./runner.ts";
import { humanDetail } from "./script.ts";
import type { CheckOptions, CheckReport, Inventory, Pair, PairResult, ProbeOutcome } from "./types.ts";

export type CheckProgress = (donePairs: number, totalPairs: number, last: string) => void;

export interface RunCheckOptions {
  /** Only these pair keys (resume). */
  only?: Set<string>;
  onProgress?: CheckProgress;
  /** Skip the diagnosis of failed pairs. */
  noDiagnose?: boolean;
}

function finishProbe(pair: Pair, o: ProbeOutcome): ProbeOutcome {
  if (o.proto === "dns" && o.ok) {
    const r = interpretDnsReply(o.detail, dnsId(pair.key, o.ip));
    return { ...o, ok: r.ok, detail: r.detail };
  }
  return o.ok ? o : { ...o, detail: humanDetail(o) };
}

export async function runCheck(
  inv: Inventory,
  opts: CheckOptions,
  exec: AgentExecutor,
  run: RunCheckOptions = {},
): Promise<CheckReport> {
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  for (const c of [...(opts.srcClusters ?? []), ...(opts.dstClusters ?? [])]) {
    if (!inv.clusters.some((x) => x.name === c)) {
      throw new NetcheckError(
        "BAD_FLAG",
        `unknown cluster "${c}"`,
        `clusters in ${inv.name}: ${inv.clusters.map((x) => x.name).join(", ")}`,
      );
    }
  }
  const { pairs, skipped } = buildMatrix(inv, opts, run.only);
  if (pairs.length === 0 && !run.only) {
    throw new NetcheckError(
      "NO_PAIRS",
      `nothing to check: mode ${opts.mode} with protocols ${opts.protocols.join(",")} gives no pair${skipped.length ? ` (${skipped.length} skipped: ${skipped[0]?.reason})` : ""}`,
      opts.protocols.includes("dns") && opts.protocols.length === 1
        ? "no endpoint serves DNS (port 53) here: dns probes need DNS servers as targets"
        : "widen --src/--dst, or pick another --mode",
    );
  }
  const nodes = [...new Set(pairs.map((p) => p.src.node))];
  const dead = await checkAgents(exec, nodes);
  if (nodes.length > 0 && dead.size === nodes.length) {
    throw new NetcheckError(
      "NO_AGENTS",
      `no agent answers, so no probe can run:\n  ${[...dead.values()].join("\n  ")}`,
      "start the agents (kosmosctl lab status shows them) and retry",
    );
  }
  const remaining = pairs.map((p) => p.probes.length);
  let donePairs = 0;
  const outcomes = await runProbes(pairs, exec, {
    concurrency: opts.concurrency,
    timeoutSec: opts.timeoutSec,
    deadNodes: dead,
    onProbe: (i) => {
      remaining[i] = (remaining[i] ?? 1) - 1;
      if (remaining[i] === 0) {
        donePairs++;
        const p = pairs[i];
        run.onProgress?.(donePairs, pairs.length, p ? `${p.src.id} → ${p.dst.id}` : "");
      }
    },
  });
  // Retries: a failed probe is tried again (all of them together, after the first pass), so that
  // one SYN lost to a busy listener does not make a red cell; a real failure fails every time.
  for (let attempt = 2; attempt <= 1 + (opts.retries ?? 1); attempt++) {
    const again: Array<{ pair: number; probe: number }> = [];
    outcomes.forEach((os, i) => {
      if (dead.has(pairs[i]?.src.node ?? "")) return;
      os.forEach((o, j) => {
        if (!o.ok) again.push({ pair: i, probe: j });
      });
    });
    if (again.length === 0) break;
    const sub: Pair[] = again.map((a) => {
      const p = pairs[a.pair] as Pair;
      return { ...p, probes: [p.probes[a.probe] as Pair["probes"][number]] };
    });
    const redo = await runProbes(sub, exec, {
      concurrency: opts.concurrency,
      timeoutSec: opts.timeoutSec,
      deadNodes: dead,
    });
    again.forEach((a, k) => {
      const o = redo[k]?.[0];
      const row = outcomes[a.pair];
      if (o && row) row[a.probe] = { ...o, attempts: attempt };
    });
  }
  const results: PairResult[] = pairs.map((p, i) => {
    const probes = (outcomes[i] ?? []).map((o) => finishProbe(p, o));
    return {
      sn: i + 1,
      key: p.key,
      src: p.src.id,
      srcCluster: p.src.cluster,
      srcNode: p.src.node,
      dst: p.dst.id,
      dstCluster: p.dst.cluster,
      dstNode: p.dst.node,
      ok: probes.length > 0 && probes.every((o) => o.ok),
      probes,
    };
  });
  if (!run.noDiagnose) await diagnoseFailures(inv, opts, pairs, results, exec, dead);
  const failed = results.filter((r) => !r.ok).length;
  return {
    version: 1,
    inventory: inv.name,
    startedAt,
    durationMs: Math.round(performance.now() - t0),
    options: opts,
    total: results.length,
    passed: results.length - failed,
    failed,
    probes: results.reduce((a, r) => a + r.probes.length, 0),
    skipped,
    agentErrors: Object.fromEntries(dead),
    results,
  };
}

/** Gather facts from every node on a failed pair's path, re-probe sized pings small, diagnose. */
async function diagnoseFailures(
  inv: Inventory,
  opts: CheckOptions,
  pairs: Pair[],
  results: PairResult[],
  exec: AgentExecutor,
  dead: Map<string, string>,
): Promise<void> {
  const failedIdx = results.map((r, i) => (r.ok ? -1 : i)).filter((i) => i >= 0);
  if (failedIdx.length === 0) return;
  // Small pings for the sized ones that failed without an MTU message (black hole vs. no path).
  const smallPairs: Pair[] = [];
  const smallOf: Array<{ pair: number; ip: string }> = [];
  for (const i of failedIdx) {
    const p = pairs[i] as Pair;
    for (const o of results[i]?.probes ?? []) {
      if (o.ok || o.proto !== "icmp" || !o.size || /mtu/i.test(o.detail)) continue;
      smallPairs.push({ ...p, probes: [{ proto: "icmp", ip: o.ip, family: o.family }] });
      smallOf.push({ pair: i, ip: o.ip });
    }
  }
  const smallOk = new Map<number, Record<string, boolean>>();
  if (smallPairs.length) {
    const small = await runProbes(smallPairs, exec, {
      concurrency: opts.concurrency,
      timeoutSec: opts.timeoutSec,
      deadNodes: dead,
    });
    small.forEach((o, k) => {
      const s = smallOf[k];
      if (!s) return;
      const rec = smallOk.get(s.pair) ?? {};
      rec[s.ip] = o[0]?.ok === true;
      smallOk.set(s.pair, rec);
    });
  }
  // Facts from every node on the paths (sources with their targets for `ip route get`).
  const targets = new Map<string, Set<string>>();
  const want = (n: string, ip?: string) => {
    const s = targets.get(n) ?? new Set<string>();
    if (ip) s.add(ip);
    targets.set(n, s);
  };
  for (const i of failedIdx) {
    const p = pairs[i] as Pair;
    for (const o of results[i]?.probes ?? []) if (!o.ok) want(p.src.node, o.ip);
    want(p.dst.node);
  }
  const facts = new Map<string, NodeFacts>();
  const fetchFacts = async (nodes: string[]) => {
    await Promise.all(
      nodes
        .filter((n) => !facts.has(n) && inv.agents[n])
        .map(async (n) => facts.set(n, await gatherFacts(exec, n, [...(targets.get(n) ?? [])], dead.get(n)))),
    );
  };
  await fetchFacts([...targets.keys()]);
  // Gateways elected in the sources' plans join the facts.
  const gws = new Set<string>();
  for (const f of facts.values()) for (const g of Object.values(f.plan?.gateways ?? {})) gws.add(g);
  await fetchFacts([...gws]);
  const clusters = new Map(inv.clusters.map((c) => [c.name, c]));
  for (const i of failedIdx) {
    const r = results[i] as PairResult;
    r.diagnosis = diagnose(pairs[i] as Pair, r, { clusters, facts, smallOk: smallOk.get(i) });
  }
}

/** Merge a resumed run into the previous report: re-checked pairs replace their old results. */
export function mergeResume(prev: CheckReport, next: CheckReport): CheckReport {
  const byKey = new Map(next.results.map((r) => [r.key, r]));
  const results = prev.results.map((r) => {
    const n = byKey.get(r.key);
    return n ? { ...n, sn: r.sn } : r;
  });
  const failed = results.filter((r) => !r.ok).length;
  return {
    ...prev,
    startedAt: next.startedAt,
    durationMs: next.durationMs,
    agentErrors: next.agentErrors,
    total: results.length,
    passed: results.length - failed,
    failed,
    results,
    resumed: next.results.length,
  };
}
